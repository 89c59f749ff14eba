"""Carried-state evaluation: consecutive windows scored as a stream give exactly the loss of
running each row's text in one call, and training can select its best epoch by it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax.data import windows
from lstm_jax.errors import ArgumentError
from lstm_jax.evaluation import Evaluator, stream_layout, stream_rows
from lstm_jax.models import CharLM
from lstm_jax.fit import train_model
from lstm_jax.train import init_params, make_optimizer

SEQ, VOCAB = 6, 9


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(3)
    ids = rng.integers(2, VOCAB, 23 * SEQ + 1).astype(np.int32)  # 23 windows: rows of unequal use
    model = CharLM(vocab_size=VOCAB, embed_dim=4, hidden_size=12)
    params = init_params(model, jax.random.key(0))
    return model, params, ids


def reference_loss(model, params, ids) -> float:
    """Summed cross-entropy of one text run in one call from a zero state (float64 sum)."""
    logits, _ = model.apply({"params": params}, jnp.asarray(ids[None, :-1]))
    logp = np.asarray(jax.nn.log_softmax(logits), np.float64)[0]
    return float(-logp[np.arange(len(ids) - 1), ids[1:]].sum())


@pytest.mark.parametrize("rows", [1, 4])
def test_stream_equals_each_row_run_in_one_call(setup, rows):
    model, params, ids = setup
    wins = windows(ids, SEQ, SEQ)
    ev = Evaluator(model.apply, batch_size=rows, initial_state=model.initial_state)
    batches, weight = stream_layout(wins, rows)
    sums = ev.stream_evaluate(params, batches, weight)
    k = batches.shape[0]
    expected = sum(
        reference_loss(model, params, ids[r * k * SEQ : min((r + 1) * k, len(wins)) * SEQ + 1]) for r in range(rows)
    )
    assert float(sums.count) == len(wins) * SEQ
    np.testing.assert_allclose(float(sums.loss), expected, rtol=2e-6)


def test_carrying_the_state_changes_the_score(setup):
    """Not the windowed evaluation under another name: it differs from starting every window at zero."""
    model, params, ids = setup
    wins = windows(ids, SEQ, SEQ)
    ev = Evaluator(model.apply, batch_size=1, initial_state=model.initial_state)
    stream, fresh = ev.stream_metrics(params, wins), ev.metrics(params, wins)
    assert abs(stream["loss"] - fresh["loss"]) > 1e-4


def test_layout_and_rows():
    wins = windows(np.arange(11 * 3 + 1, dtype=np.int32), 3, 3)  # 11 windows
    batches, weight = stream_layout(wins, 4)  # K = 3 windows per row, one zero-weight pad
    assert batches.shape == (3, 4, 4) and weight.sum() == 11 and weight[-1, -1] == 0
    np.testing.assert_array_equal(batches[1, 0], wins[1])  # row 0 continues with window 1
    np.testing.assert_array_equal(batches[0, 1], wins[3])  # row 1 starts at window K
    assert stream_rows(930, 256) == 9 and stream_rows(50, 256) == 1 and stream_rows(10**6, 256) == 256


def test_overlapping_windows_are_refused():
    wins = windows(np.arange(40, dtype=np.int32), 5, 1)  # stride 1: not a stream
    with pytest.raises(ArgumentError, match="consecutive windows"):
        stream_layout(wins, 1)


def test_training_reports_and_selects_by_the_carried_score(setup):
    model, params, ids = setup
    rng = np.random.default_rng(4)
    train = windows(rng.integers(2, VOCAB, 32 * SEQ + 1).astype(np.int32), SEQ, SEQ)
    heldout = windows(ids, SEQ, SEQ)
    result = train_model(
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
        heldout_state="carried",
    )
    expected = result.evaluator.stream_metrics(result.state.params, heldout, "heldout_")
    assert result.final["heldout_loss"] == expected["heldout_loss"]
    best = min(result.history, key=lambda row: row["heldout_loss"])
    assert best["epoch"] == result.best_epoch and best["heldout_loss"] == expected["heldout_loss"]
    with pytest.raises(ArgumentError, match="heldout_state"):
        train_model(
            model,
            params,
            train,
            heldout,
            tx=make_optimizer(0.03, 0),
            epochs=1,
            batch_size=8,
            eval_batch_size=4,
            key=jax.random.key(1),
            heldout_state="stream",
        )
