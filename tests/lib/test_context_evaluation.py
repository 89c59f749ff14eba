"""Held-out windows scored with context: each window's characters get exactly the
probabilities the model gives them when it reads the text from k windows earlier, and training
reports and selects its best epoch by that score."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax.io._datasets import windows
from lstm_jax.errors import ArgumentError
from lstm_jax.training import Evaluator, train_model, init_params, make_optimizer
from lstm_jax.training._evaluation import with_context
from lstm_jax.nn import CharLM

SEQ, VOCAB = 6, 9


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(3)
    ids = rng.integers(2, VOCAB, 11 * SEQ + 1).astype(np.int32)
    model = CharLM(vocab_size=VOCAB, embed_dim=4, hidden_size=12)
    params = init_params(model, jax.random.key(0))
    return model, params, ids


def reference(model, params, ids, context: int):
    """(summed cross-entropy, correct) of window m's targets, each read in its own call from
    character max(0, (m - context) * SEQ) of the text, from a zero state (float64 sums)."""
    loss = correct = 0.0
    for m in range((len(ids) - 1) // SEQ):
        start, end = max(0, (m - context) * SEQ), (m + 1) * SEQ
        logits, _ = model.apply({"params": params}, jnp.asarray(ids[None, start:end]))
        logp = np.asarray(jax.nn.log_softmax(logits), np.float64)[0, -SEQ:]
        targets = ids[end - SEQ + 1 : end + 1]
        loss -= logp[np.arange(SEQ), targets].sum()
        correct += (logp.argmax(-1) == targets).sum()
    return loss, correct


@pytest.mark.parametrize("context", [0, 1, 3])
def test_each_window_is_scored_as_read_from_k_windows_before(setup, context):
    model, params, ids = setup
    n = (len(ids) - 1) // SEQ
    found = Evaluator(model.apply, batch_size=4).metrics(params, windows(ids, SEQ, SEQ), context=context)
    loss, correct = reference(model, params, ids, context)
    np.testing.assert_allclose(found["loss"], loss / (n * SEQ), rtol=2e-6)
    assert found["accuracy"] == correct / (n * SEQ)


def test_context_changes_the_score(setup):
    """Not the plain evaluation under another name."""
    model, params, ids = setup
    ev = Evaluator(model.apply, batch_size=4)
    wins = windows(ids, SEQ, SEQ)
    assert abs(ev.metrics(params, wins, context=1)["loss"] - ev.metrics(params, wins)["loss"]) > 1e-4


def test_context_layout():
    wins = windows(np.arange(4 * 3 + 1, dtype=np.int32), 3, 3)  # 4 windows of 3
    extended, mask = with_context(wins, 1)
    assert extended.shape == (4, 7) and mask.shape == (4, 6)
    np.testing.assert_array_equal(extended[2], np.arange(3, 10))  # window 1's inputs, then window 2
    assert not mask[0, :3].any() and mask[0, 3:].all() and mask[1:].all()


def test_overlapping_windows_are_refused():
    wins = windows(np.arange(40, dtype=np.int32), 5, 1)  # stride 1: not one text cut in order
    with pytest.raises(ArgumentError, match="consecutive windows"):
        with_context(wins, 1)


def test_training_reports_and_selects_by_the_context_score(setup):
    model, params, ids = setup
    rng = np.random.default_rng(4)
    train = windows(rng.integers(2, VOCAB, 32 * SEQ + 1).astype(np.int32), SEQ, SEQ)
    heldout = windows(ids, SEQ, SEQ)

    def run(**kwargs):
        return train_model(
            model,
            params,
            train,
            heldout,
            tx=make_optimizer(0.03, 0, schedule="constant"),
            epochs=3,
            batch_size=8,
            eval_batch_size=4,
            key=jax.random.key(1),
            keep_best=True,
            **kwargs,
        )

    result = run(heldout_context=1)
    expected = result.evaluator.metrics(result.state.params, heldout, "heldout_", context=1)
    assert result.final["heldout_loss"] == expected["heldout_loss"]
    best = min(result.history, key=lambda row: row["heldout_loss"])
    assert best["epoch"] == result.best_epoch and best["heldout_loss"] == expected["heldout_loss"]
    with pytest.raises(ArgumentError, match="heldout_context"):
        run(heldout_context=-1)
