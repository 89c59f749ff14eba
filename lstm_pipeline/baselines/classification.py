"""The field's baselines for sequence classification, computed on exactly the LSTM's inputs:
1-nearest-neighbour with dynamic time warping, and a logistic regression on summary features.

DTW here is the multivariate "dependent" DTW (Shokoohi-Yekta et al. 2017) with a full window:
the cost of matching step i of a with step j of b is the squared Euclidean distance between
the two F-vectors, and the distance is the least total cost over warping paths from (0, 0) to
(len a - 1, len b - 1), as sktime's `dtw_distance` computes it. It is written here in NumPy,
all pairs at once, because calling sktime's numba distance once per pair took over 120 s for
JapaneseVowels' 100k pairs on the 2-core machine (this version: about 2 s).
"""

from __future__ import annotations

import numpy as np

from lstm_pipeline.extras import require


def dtw_distances(a, a_len, b, b_len, *, chunk: int = 64) -> np.ndarray:
    """float64[Na, Nb]: DTW between every a[i, :a_len[i]] and b[j, :b_len[j]] (a float[Na, Ta, F],
    b float[Nb, Tb, F], right-padded; lengths int[N] >= 1), `chunk` rows of a at a time.

    One row i of the cost table at a time, time-major, so each update touches one contiguous
    [chunk, Nb] slab that stays in cache (building the whole [Ta, Tb, chunk, Nb] table first was
    4-5x slower: memory-bound). No BLAS: the same bits on every CPU.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a_len, b_len = np.asarray(a_len), np.asarray(b_len)
    ta, tb, features = a.shape[1], b.shape[1], a.shape[2]
    b_tm = np.ascontiguousarray(b.transpose(2, 1, 0))  # [F, Tb, Nb]
    cols = np.arange(len(b))[None, :]
    out = np.empty((len(a), len(b)))
    for start in range(0, len(a), chunk):
        part = np.ascontiguousarray(a[start : start + chunk].transpose(1, 2, 0))  # [Ta, F, P]
        lengths = a_len[start : start + chunk]
        shape = (tb, part.shape[2], len(b))
        cost, diff = np.empty(shape), np.empty(shape)
        prev = np.full((tb + 1, *shape[1:]), np.inf)  # row i of the table; column 0 is the border
        prev[0] = 0.0
        cur = np.empty_like(prev)
        ends = out[start : start + chunk]
        for i in range(ta):
            cost[:] = 0.0  # cost[j, p, q] = ||a[p, i] - b[q, j]||^2, summed one feature at a time
            for f in range(features):
                np.subtract(part[i, f][None, :, None], b_tm[f][:, None, :], out=diff)
                diff *= diff
                cost += diff
            cur[0] = np.inf
            for j in range(1, tb + 1):
                np.minimum(prev[j], cur[j - 1], out=cur[j])
                np.minimum(cur[j], prev[j - 1], out=cur[j])
                cur[j] += cost[j - 1]
            done = np.nonzero(lengths == i + 1)[0]  # rows of a that end at step i
            if len(done):
                ends[done] = cur[b_len[None, :], done[:, None], cols]
            prev, cur = cur, prev
    return out


def nearest_neighbour(distances: np.ndarray, train_y: np.ndarray) -> np.ndarray:
    """int[Na]: the label of each row's nearest training case (the first one on ties)."""
    return np.asarray(train_y)[np.argmin(distances, axis=1)]


def summary_features(x, mask) -> np.ndarray:
    """float64[N, 7F + 1]: per feature the mean, std, min, max, first, last value and least-squares
    slope over each sequence's real steps, then its length."""
    x, mask = np.asarray(x, np.float64), np.asarray(mask, bool)
    n = mask.sum(1)
    w = mask[..., None]
    mean = (x * w).sum(1) / n[:, None]
    std = np.sqrt((((x - mean[:, None]) ** 2) * w).sum(1) / n[:, None])
    big = np.finfo(np.float64).max
    low, high = np.where(w, x, big).min(1), np.where(w, x, -big).max(1)
    first, last = x[:, 0], x[np.arange(len(x)), n - 1]
    t = np.arange(x.shape[1])[None, :, None] - ((n - 1) / 2)[:, None, None]
    slope = (t * (x - mean[:, None]) * w).sum(1) / np.maximum((t**2 * w).sum(1), 1e-12)
    return np.concatenate([mean, std, low, high, first, last, slope, n[:, None].astype(np.float64)], axis=1)


def summary_logistic(train_x, train_mask, train_y, test_x, test_mask) -> np.ndarray:
    """Predicted labels of a multinomial logistic regression (scikit-learn, L2, C=1) on the
    standardized `summary_features`, fitted on the training cases only."""
    linear = require("sklearn.linear_model")
    preprocessing = require("sklearn.preprocessing")
    scaler = preprocessing.StandardScaler().fit(summary_features(train_x, train_mask))
    model = linear.LogisticRegression(max_iter=5000)
    model.fit(scaler.transform(summary_features(train_x, train_mask)), train_y)
    return model.predict(scaler.transform(summary_features(test_x, test_mask)))


# Published 1-NN test accuracies on the archive's own train/test split: Bagnall et al., "The
# UEA multivariate time series classification archive, 2018", arXiv:1811.00075, Table 3
# (ED: Euclidean; DTW_I: independent; DTW_D: dependent, as computed here). Our 1-NN DTW on the
# raw series reproduces their DTW_D on both datasets (0.949 and 0.975).
PUBLISHED = {
    "JapaneseVowels": {"source": "arXiv:1811.00075 Table 3", "ed_1nn": 0.924, "dtw_i_1nn": 0.959, "dtw_d_1nn": 0.949},
    "BasicMotions": {"source": "arXiv:1811.00075 Table 3", "ed_1nn": 0.676, "dtw_i_1nn": 1.0, "dtw_d_1nn": 0.975},
}
