"""Best-epoch selection and early stopping: a run whose held-out loss rises keeps the best
epoch's weights bit for bit, stops `patience` epochs after it, and resumes to the same ones."""

import jax
import numpy as np
import pytest

from lstm_jax.training import TrainCheckpointer, train_model, init_params, make_optimizer
from lstm_jax.io._datasets import windows
from lstm_jax.training._metrics import with_bits
from lstm_jax.nn import CharLM
from lstm_jax.io import Vocabulary

SEQ, BATCH, EPOCHS = 8, 8, 7


@pytest.fixture(scope="module")
def overfit():
    """Random text: a model that memorises 48 training windows gets worse on other random text."""
    rng = np.random.default_rng(0)
    vocab = Vocabulary.from_text("abcdefghij")
    train = windows(rng.integers(2, len(vocab), 48 * SEQ + 1).astype(np.int32), SEQ, SEQ)
    heldout = windows(rng.integers(2, len(vocab), 16 * SEQ + 1).astype(np.int32), SEQ, SEQ)
    model = CharLM(vocab_size=len(vocab), embed_dim=8, hidden_size=24)
    return model, train, heldout


def run(overfit, epochs=EPOCHS, **kwargs):
    model, train, heldout = overfit
    tx = make_optimizer(0.03, 0, schedule="constant")  # the same steps whatever the run's length
    return train_model(
        model,
        init_params(model, jax.random.key(0)),
        train,
        heldout,
        tx=tx,
        epochs=epochs,
        batch_size=BATCH,
        eval_batch_size=16,
        key=jax.random.key(1),
        **kwargs,
    )


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def full(overfit):
    return run(overfit, keep_best=True)


def test_the_best_epochs_weights_are_kept_bit_for_bit(overfit, full):
    losses = [row["heldout_loss"] for row in full.history]
    best = int(np.argmin(losses)) + 1
    assert full.best_epoch == best < EPOCHS and losses[-1] > losses[best - 1]  # it did overfit
    shorter = run(overfit, epochs=best)  # the same run stopped at the best epoch
    assert same(full.state.params, shorter.state.params)
    assert full.final["heldout_loss"] == pytest.approx(losses[best - 1], rel=1e-6)


def test_patience_stops_after_that_many_epochs_without_improvement(overfit, full):
    stopped = run(overfit, patience=1)
    assert len(stopped.history) == full.best_epoch + 1
    assert stopped.history == full.history[: full.best_epoch + 1]
    assert same(stopped.state.params, full.state.params)


def test_a_resumed_run_keeps_the_same_best_epoch(overfit, full, tmp_path):
    model, train, heldout = overfit
    make = lambda folder: TrainCheckpointer(  # noqa: E731
        folder, every=2, fingerprint="t", model=model, vocab=Vocabulary.from_text("abcdefghij"), optimizer={}
    )

    class Killed(Exception):
        pass

    def kill_after_last(row):
        if row["epoch"] == EPOCHS - 1:
            raise Killed

    with pytest.raises(Killed):
        run(overfit, keep_best=True, checkpointer=make(tmp_path / "killed"), on_epoch=kill_after_last)
    resumed = run(overfit, keep_best=True, checkpointer=make(tmp_path / "killed"))
    assert resumed.best_epoch == full.best_epoch and same(resumed.state.params, full.state.params)
    # Rows' running train means depend on where checkpoints cut the epoch (float32 sums): compare
    # with an uninterrupted run cut the same way.
    assert resumed.history == run(overfit, keep_best=True, checkpointer=make(tmp_path / "whole")).history


def test_rows_carry_bits_per_character_and_perplexity():
    row = with_bits({"epoch": 1, "heldout_loss": float(np.log(4.0)), "heldout_accuracy": 0.5})
    assert list(row) == ["epoch", "heldout_loss", "heldout_bpc", "heldout_perplexity", "heldout_accuracy"]
    assert row["heldout_bpc"] == pytest.approx(2.0) and row["heldout_perplexity"] == pytest.approx(4.0)
