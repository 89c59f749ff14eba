"""The Kneser-Ney baseline: a distribution at every context, equal to a slow dictionary-based
implementation of the same equations (Chen & Goodman 1999), and order selection."""

from collections import Counter, defaultdict

import numpy as np
import pytest

from lstm_jax.errors import ArgumentError
from lstm_pipeline.baselines.kneser_ney import KneserNey, bits_per_char, select_order

TEXT = (
    "the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat; "
    "then the cat ran off and the dog sat still. "
) * 3 + "zebra quilt"


def _ids(text):
    chars = sorted(set(text))
    return np.array([chars.index(c) for c in text]), len(chars)


def _slow_model(ids, order, vocab):
    """Dictionaries of (continuation) counts per order, with Chen & Goodman's discounts."""
    ids = [int(i) for i in ids]
    levels = []
    for n in range(1, order + 1):
        if n == order:
            counts = Counter(tuple(ids[i : i + n]) for i in range(len(ids) - n + 1))
        else:
            longer = {tuple(ids[i : i + n + 1]) for i in range(len(ids) - n)}
            counts = Counter(g[1:] for g in longer)
        nk = [sum(1 for c in counts.values() if c == k) for k in (1, 2, 3, 4)]
        y = nk[0] / (nk[0] + 2 * nk[1]) if nk[0] else 0.5
        disc = [0.0, y, y, y]
        if min(nk) > 0:
            raw = [1 - 2 * y * nk[1] / nk[0], 2 - 3 * y * nk[2] / nk[1], 3 - 4 * y * nk[3] / nk[2]]
            if all(0 < v <= c for c, v in zip((1, 2, 3), raw)):
                disc = [0.0, *raw]
        totals, backoff = defaultdict(float), defaultdict(float)
        for gram, c in counts.items():
            totals[gram[:-1]] += c
            backoff[gram[:-1]] += disc[min(c, 3)]
        levels.append((counts, totals, backoff, disc))
    return levels


def _slow_prob(levels, vocab, context, w):
    p = 1.0 / vocab
    for n, (counts, totals, backoff, disc) in enumerate(levels, start=1):
        if len(context) < n - 1:
            break
        h = tuple(context[len(context) - (n - 1) :]) if n > 1 else ()
        total = totals.get(h, 0.0)
        if total == 0:
            continue
        c = counts.get(h + (w,), 0)
        p = (max(c - disc[min(c, 3)], 0.0) + backoff[h] * p) / total
    return p


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_matches_a_slow_reference(order):
    ids, vocab = _ids(TEXT)
    train, test = ids[:250], ids[250:]
    model = KneserNey(order, vocab).fit(train)
    levels = _slow_model(train, order, vocab)
    fast = model.log_probs(test)
    slow = [
        np.log(_slow_prob(levels, vocab, list(test[max(0, t - order + 1) : t]), int(test[t])))
        for t in range(1, len(test))
    ]
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
    assert bits_per_char(fast) == pytest.approx(-np.mean(slow) / np.log(2), rel=1e-12)


@pytest.mark.parametrize("order", [1, 2, 4, 6])
def test_a_distribution_at_every_context(order):
    ids, vocab = _ids(TEXT)
    model = KneserNey(order, vocab).fit(ids)
    rng = np.random.default_rng(0)
    contexts = [ids[i : i + k] for k in range(order) for i in (0, 17, 101)]  # seen
    contexts += [rng.integers(0, vocab, k) for k in range(1, order) for _ in range(3)]  # mostly unseen
    for context in contexts:
        p = model.distribution(context)
        assert p.shape == (vocab,) and np.all(p > 0)
        assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_higher_orders_predict_repeated_text_better():
    ids, vocab = _ids(TEXT)
    train, test = ids[:-60], ids[-60:]
    bpc = [bits_per_char(KneserNey(o, vocab).fit(train).log_probs(test)) for o in (1, 3)]
    assert bpc[1] < bpc[0] < np.log2(vocab)


def test_order_selection_picks_the_best_validation_score():
    ids, vocab = _ids(TEXT * 2)
    chosen = select_order(ids, vocab, orders=[1, 2, 3, 4], validation_fraction=0.2)
    scores = chosen["validation_bpc"]
    assert sorted(scores) == [1, 2, 3, 4] and chosen["order"] == min(scores, key=scores.get)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: KneserNey(0, 5), "order: expected an integer >= 1"),
        (lambda: KneserNey(12, 100), "vocab_size: expected"),
        (lambda: KneserNey(3, 5).fit(np.array([0, 1])), "at least order=3"),
        (lambda: KneserNey(2, 5).fit(np.array([0, 7, 1])), r"symbols in \[0, 5\)"),
        (lambda: KneserNey(2, 5).fit(np.zeros((2, 2), int)), "1-D integer array"),
        (lambda: KneserNey(2, 5).log_probs(np.array([0, 1])), "call fit"),
    ],
)
def test_bad_input_is_one_clear_error(call, match):
    with pytest.raises(ArgumentError, match=match):
        call()
