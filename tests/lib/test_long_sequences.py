"""Segment-wise rematerialisation: exact full-BPTT sums and gradients, memory sublinear in T."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax.training import remat_segments
from lstm_jax.training._long_sequences import segmented_token_sums
from lstm_jax.training._metrics import token_sums
from lstm_jax.nn import CharLM


def _batch(steps, batch=4, vocab=11, seed=0):
    tokens = jax.random.randint(jax.random.key(seed), (batch, steps + 1), 0, vocab)
    return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "weights": jnp.ones((batch, steps))}


def _plain_loss(model, params, batch):
    logits, _ = model.apply({"params": params}, batch["inputs"])
    sums = token_sums(logits, batch["targets"], batch["weights"])
    return sums.mean_loss()


def _segmented_loss(model, params, batch, segment):
    sums, _ = segmented_token_sums(model.apply, params, batch, segment)
    return sums.mean_loss()


def test_segmented_loss_and_gradients_equal_one_pass():
    model = CharLM(vocab_size=11, embed_dim=8, hidden_size=16)
    batch = _batch(24)
    params = model.init(jax.random.key(1), batch["inputs"])["params"]
    plain = jax.value_and_grad(_plain_loss, argnums=1)(model, params, batch)
    segmented = jax.value_and_grad(_segmented_loss, argnums=1)(model, params, batch, 6)
    for got, want in zip(jax.tree.leaves(segmented), jax.tree.leaves(plain)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_segment_must_divide_the_length():
    with pytest.raises(ValueError, match="segment: expected a divisor of the sequence length 10, found 4"):
        remat_segments(lambda c, x: (c, x), 0.0, jnp.zeros((2, 10)), 4)


def _train_scratch_bytes(steps, segment):
    """XLA's scratch memory for one gradient of a CharLM over rows of `steps` tokens."""
    model = CharLM(vocab_size=11, embed_dim=8, hidden_size=64)
    batch = _batch(steps, batch=8)
    params = model.init(jax.random.key(1), batch["inputs"][:, :2])["params"]
    if segment:
        loss = lambda p, b: _segmented_loss(model, p, b, segment)  # noqa: E731
    else:
        loss = lambda p, b: _plain_loss(model, p, b)  # noqa: E731
    return jax.jit(jax.grad(loss)).lower(params, batch).compile().memory_analysis().temp_size_in_bytes


def test_training_memory_grows_sublinearly_with_segments():
    # Full backprop keeps every step: 4x the steps, ~4x the memory.
    plain = [_train_scratch_bytes(t, 0) for t in (256, 1024)]
    assert plain[1] > 3.5 * plain[0]
    # Segments of sqrt(T) steps: 4x the steps, ~2x the memory.
    remat = [_train_scratch_bytes(t, int(np.sqrt(t))) for t in (256, 1024)]
    assert remat[1] < 2.5 * remat[0]
    assert remat[1] < plain[1] / 4
