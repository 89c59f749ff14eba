"""The classical baseline of character language modelling: an interpolated modified Kneser-Ney
n-gram model (Kneser & Ney 1995; Chen & Goodman 1999, "An empirical study of smoothing
techniques for language modeling", section 3), in NumPy.

    P(w | h) = max(c(hw) - D(c(hw)), 0) / c(h.) + gamma(h) * P(w | h')      (h' = h without its
    gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / c(h.)                  first symbol)

At the highest order c is the count; at lower orders it is the continuation count N1+(. h w),
the number of distinct symbols seen before h w. Discounts D1, D2, D3+ per order come from the
count-of-counts. The recursion ends in the uniform distribution over the vocabulary, so every
symbol has a positive probability and P(. | h) sums to 1 at every context. A context never seen
in training (c(h.) = 0) backs off entirely: P(w | h) = P(w | h').

Symbols are ints in [0, V); n-grams are packed into int64 keys (base V), so V**order < 2**63.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_jax.errors import ArgumentError

LN2 = float(np.log(2.0))


def _grams(ids: np.ndarray, n: int, base: int) -> np.ndarray:
    """int64[L - n + 1]: every n-gram of ids int[L] packed as sum(ids[i + k] * base**(n-1-k))."""
    keys = np.zeros(len(ids) - n + 1, np.int64)
    for k in range(n):
        keys = keys * base + ids[k : len(ids) - n + 1 + k]
    return keys


def _lookup(table_keys: np.ndarray, table_values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """table_values at the positions of keys in the sorted table_keys; 0 where a key is absent."""
    if len(table_keys) == 0:
        return np.zeros(len(keys), table_values.dtype)
    pos = np.minimum(np.searchsorted(table_keys, keys), len(table_keys) - 1)
    return np.where(table_keys[pos] == keys, table_values[pos], 0)


def _discounts(counts: np.ndarray) -> np.ndarray:
    """float64[4]: the discount for a count of 0, 1, 2 and 3+ (Chen & Goodman's D1, D2, D3+),
    estimated from how many n-grams have each count. Where those estimates leave (0, count]
    (thin data), one absolute discount Y = n1 / (n1 + 2 n2) for all counts (Ney et al. 1994),
    or 0.5 when even that is undefined: a discount of 0 would leave unseen symbols no mass."""
    n = [int(np.sum(counts == k)) for k in (1, 2, 3, 4)]
    y = n[0] / (n[0] + 2 * n[1]) if n[0] > 0 else 0.5
    if min(n) > 0:
        d = [1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]]
        if all(0 < v <= c for c, v in zip((1, 2, 3), d)):
            return np.array([0.0, *d])
    return np.array([0.0, y, y, y])


@dataclass
class _Level:
    """The statistics of one order n: for every n-gram h w its (continuation) count, and for
    every context h the total c(h.) and the backoff weight's numerator."""

    gram_keys: np.ndarray  # int64[G] sorted
    gram_counts: np.ndarray  # float64[G]
    ctx_keys: np.ndarray  # int64[C] sorted
    ctx_totals: np.ndarray  # float64[C]
    ctx_backoff: np.ndarray  # float64[C]: D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)
    discounts: np.ndarray  # float64[4]


def _level(gram_keys: np.ndarray, counts: np.ndarray, base: int) -> _Level:
    disc = _discounts(counts)
    d = disc[np.minimum(counts, 3).astype(np.int64)]
    ctx = gram_keys // base
    ctx_keys, inverse = np.unique(ctx, return_inverse=True)
    totals = np.bincount(inverse, weights=counts.astype(np.float64))
    backoff = np.bincount(inverse, weights=d)
    return _Level(gram_keys, counts.astype(np.float64), ctx_keys, totals, backoff, disc)


class KneserNey:
    """An interpolated modified Kneser-Ney model of `order` over symbols [0, vocab_size).

    `KneserNey(order, vocab_size).fit(ids)` counts ids int[L]; `log_probs(ids)` scores a
    sequence; `distribution(context)` gives P(. | context) float64[V].
    """

    def __init__(self, order: int, vocab_size: int):
        if order < 1:
            raise ArgumentError(f"order: expected an integer >= 1, found {order}")
        if vocab_size < 1 or float(vocab_size) ** order >= 2.0**62:
            raise ArgumentError(
                f"vocab_size: expected 1 <= vocab_size with vocab_size**order < 2**62 (order {order}), "
                f"found {vocab_size}"
            )
        self.order, self.vocab_size = order, vocab_size
        self.levels: list[_Level] = []

    def fit(self, ids: np.ndarray) -> KneserNey:
        ids = self._check(ids, "ids")
        if len(ids) < self.order:
            raise ArgumentError(f"ids: expected at least order={self.order} symbols to count, found {len(ids)}")
        base = self.vocab_size
        levels = []
        for n in range(1, self.order + 1):
            keys, counts = np.unique(_grams(ids, n, base), return_counts=True)
            if n < self.order:
                # Continuation count of g: distinct symbols x with x g an (n+1)-gram type.
                longer = np.unique(_grams(ids, n + 1, base))
                keys, counts = np.unique(longer % base**n, return_counts=True)
            levels.append(_level(keys, counts, base))
        self.levels = levels
        return self

    def _check(self, ids, what: str) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ArgumentError(f"{what}: expected a 1-D integer array, found {ids.dtype}{list(ids.shape)}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ArgumentError(f"{what}: expected symbols in [0, {self.vocab_size}), found {ids.min()}..{ids.max()}")
        return ids.astype(np.int64)

    def _prob(self, contexts: list[np.ndarray], symbols: np.ndarray) -> np.ndarray:
        """P(symbols[i] | context) for packed contexts of length 0 .. order-1 (contexts[k]
        int64[N] holds the last k symbols, or -1 where the history is shorter than k)."""
        base = self.vocab_size
        p = np.full(len(symbols), 1.0 / base)
        for n, level in enumerate(self.levels, start=1):
            ctx = contexts[n - 1]
            usable = ctx >= 0
            c_ctx = np.clip(ctx, 0, None)
            total = _lookup(level.ctx_keys, level.ctx_totals, c_ctx)
            backoff = _lookup(level.ctx_keys, level.ctx_backoff, c_ctx)
            count = _lookup(level.gram_keys, level.gram_counts, c_ctx * base + symbols)
            seen = usable & (total > 0)
            d = level.discounts[np.minimum(count, 3).astype(np.int64)]
            safe = np.where(seen, total, 1.0)
            p = np.where(seen, (np.maximum(count - d, 0.0) + backoff * p) / safe, p)
        return p

    def log_probs(self, ids: np.ndarray, start: int = 1) -> np.ndarray:
        """float64[L - start]: ln P(ids[t] | ids[max(0, t-order+1):t]) for t = start .. L-1.

        The context of each symbol is what precedes it in `ids` (shorter near the beginning)."""
        ids = self._check(ids, "ids")
        if not self.levels:
            raise ArgumentError("KneserNey: call fit(ids) before scoring")
        targets = np.arange(start, len(ids))
        contexts, packed = [], np.zeros(len(targets), np.int64)
        for k in range(self.order):
            contexts.append(packed.copy())
            prev = targets - k - 1
            packed = np.where(prev >= 0, ids[np.clip(prev, 0, None)] * self.vocab_size**k + packed, -1)
            packed = np.where(contexts[-1] < 0, -1, packed)
        return np.log(self._prob(contexts, ids[targets]))

    def distribution(self, context) -> np.ndarray:
        """float64[V]: P(w | context) for every symbol w (context: the preceding symbols)."""
        context = self._check(np.asarray(context, np.int64).reshape(-1), "context")
        context = context[max(0, len(context) - self.order + 1) :]
        seq = np.concatenate([np.repeat(context[None], self.vocab_size, 0), np.arange(self.vocab_size)[:, None]], 1)
        return np.array([np.exp(self.log_probs(row, start=len(row) - 1)[0]) for row in seq])


def bits_per_char(log_probs: np.ndarray) -> float:
    """Mean negative log2 probability: natural-log probabilities float[N] -> bits per symbol."""
    return float(-np.mean(log_probs) / LN2)


def select_order(ids: np.ndarray, vocab_size: int, orders=range(2, 9), validation_fraction: float = 0.1) -> dict:
    """The order whose model, fitted on the leading (1 - validation_fraction) of ids, scores the
    trailing part best. Returns {"order": best, "validation_bpc": {order: bpc}}."""
    cut = int(len(ids) * (1 - validation_fraction))
    fit_ids, val_ids = np.asarray(ids[:cut]), np.asarray(ids[cut:])
    scores = {}
    for order in orders:
        if float(vocab_size) ** order >= 2.0**62:
            break
        model = KneserNey(order, vocab_size).fit(fit_ids)
        scores[order] = bits_per_char(model.log_probs(val_ids))
    best = min(scores, key=scores.get)
    return {"order": best, "validation_bpc": scores}
