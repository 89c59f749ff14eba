"""Stateful training and prediction: stream layout, carried state, resets, truncated backprop,
any batch size at prediction time, and batched generation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax import LSTM, reset_state
from lstm_jax.io._datasets import stream_batches
from lstm_jax.errors import LstmJaxError
from lstm_jax.training import generate_text, init_params, make_optimizer
from lstm_jax.training._generate import generate_batch
from lstm_jax.nn import CharLM
from lstm_jax.training._step import create_train_state, make_stateful_train_epoch, split_window, stateful_train_step
from lstm_jax.io import Vocabulary

OPT = dict(learning_rate=0.01, schedule="constant", clip_norm=1.0)


def test_stream_layout_continues_each_row():
    ids = np.arange(1, 42)  # 41 ids: 3 rows x 2 windows x 6 steps + 1
    batches = stream_batches(ids, batch_size=3, seq_length=6)
    assert batches.shape == (2, 3, 7)
    for row in range(3):
        stream = np.concatenate([batches[0, row, :-1], batches[1, row]])
        np.testing.assert_array_equal(stream, ids[row * 12 : row * 12 + 13])
        assert batches[0, row, -1] == batches[1, row, 0]  # last target = next first input
    with pytest.raises(LstmJaxError, match="expected at least 19 ids"):
        stream_batches(ids[:18], batch_size=3, seq_length=6)


def test_consecutive_stateful_batches_equal_one_long_sequence():
    layer = LSTM(hidden_size=6, num_layers=2, bidirectional=False, proj_size=4)
    x = jax.random.normal(jax.random.key(0), (3, 10, 2))
    variables = layer.init(jax.random.key(1), x)
    full, full_state = layer.apply(variables, x)
    a, state = layer.apply(variables, x[:, :4])
    b, state = layer.apply(variables, x[:, 4:], state)
    np.testing.assert_allclose(jnp.concatenate([a, b], 1), full, atol=1e-6)
    for got, want in zip(state, full_state):
        np.testing.assert_allclose(got.c, want.c, atol=1e-6)


def test_partial_reset_equals_fresh_zeros_for_reset_rows_only():
    layer = LSTM(hidden_size=5, num_layers=2)
    x = jax.random.normal(jax.random.key(0), (4, 6, 3))
    variables = layer.init(jax.random.key(1), x)
    _, state = layer.apply(variables, x[:, :3])
    reset = jnp.array([True, False, True, False])
    out, _ = layer.apply(variables, x[:, 3:], reset_state(state, reset))
    fresh, _ = layer.apply(variables, x[:, 3:])
    carried, _ = layer.apply(variables, x[:, 3:], state)
    np.testing.assert_array_equal(out[reset], fresh[reset])
    np.testing.assert_array_equal(out[~reset], carried[~reset])


@pytest.fixture(scope="module")
def stream_setup():
    vocab = Vocabulary.from_text("abcdefg ")
    ids = vocab.encode("abcdefg " * 40)
    batches = stream_batches(ids, batch_size=4, seq_length=10)
    model = CharLM(vocab_size=len(vocab), embed_dim=8, hidden_size=16)
    return vocab, batches, model


def test_stateful_epoch_equals_a_manual_loop_with_resets(stream_setup):
    vocab, batches, model = stream_setup
    params = init_params(model, jax.random.key(0))
    state0 = create_train_state(model, params, make_optimizer(total_steps=100, **OPT))
    resets = np.zeros(batches.shape[:2], bool)
    resets[2, 1] = True  # a document boundary in row 1 before batch 2
    key = jax.random.key(3)
    state, sums, carry = make_stateful_train_epoch(model)(state0, batches, resets, key)

    manual, manual_carry = state0, model.initial_state(4)
    for k in range(batches.shape[0]):
        batch = {**split_window(jnp.asarray(batches[k])), "reset": jnp.asarray(resets[k])}
        manual, manual_carry, _ = jax.jit(stateful_train_step)(manual, batch, manual_carry, jax.random.fold_in(key, k))
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(manual.params)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(carry[0].h, manual_carry[0].h, atol=1e-6)
    assert float(sums.count) == batches.shape[0] * 4 * 10


def test_backprop_is_truncated_at_the_batch_boundary(stream_setup):
    vocab, batches, model = stream_setup
    state = create_train_state(model, init_params(model, jax.random.key(0)), make_optimizer(total_steps=100, **OPT))
    batch = split_window(jnp.asarray(batches[1]))
    _, carry = model.apply({"params": state.params}, jnp.asarray(batches[0, :, :-1]))
    new_state, new_carry, _ = stateful_train_step(state, batch, carry)
    # The value carries on: it is the state the model ends batch 1 in, from batch 0's state.
    _, expected = model.apply({"params": state.params}, batch["inputs"], carry)
    np.testing.assert_allclose(new_carry[0].h, expected[0].h, atol=1e-6)
    # The gradient does not: nothing flows back through the carried state.
    g = jax.jit(jax.grad(lambda c: jnp.sum(stateful_train_step(state, batch, c)[1][0].h)))(carry)
    assert all(np.all(np.asarray(leaf) == 0) for leaf in jax.tree.leaves(g))


def test_training_memory_does_not_grow_with_the_stream_length(stream_setup):
    _, _, model = stream_setup
    state = create_train_state(model, init_params(model, jax.random.key(0)), make_optimizer(total_steps=100, **OPT))
    epoch = make_stateful_train_epoch(model)

    def temp_bytes(n_batches):
        batches = np.ones((n_batches, 4, 11), np.int32)
        compiled = epoch.lower(state, batches, np.zeros((n_batches, 4), bool), jax.random.key(0)).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    short, long = temp_bytes(4), temp_bytes(64)  # a 16x longer stream
    assert long < 1.1 * short, (short, long)


def test_trained_at_batch_4_predicts_at_batch_1(stream_setup):
    vocab, batches, model = stream_setup
    params = init_params(model, jax.random.key(0))
    state = create_train_state(model, params, make_optimizer(total_steps=100, **OPT))
    state, _, _ = make_stateful_train_epoch(model)(state, batches, np.zeros(batches.shape[:2], bool), jax.random.key(0))
    p = state.params
    # Batched, stateful over the stream.
    carry, batched = model.initial_state(4), []
    for k in range(batches.shape[0]):
        logits, carry = model.apply({"params": p}, batches[k, :, :-1], carry)
        batched.append(logits)
    # Row 2 alone at batch size 1, with its own carried state.
    carry1, single = model.initial_state(1), []
    for k in range(batches.shape[0]):
        logits, carry1 = model.apply({"params": p}, batches[k, 2:3, :-1], carry1)
        single.append(logits)
    np.testing.assert_allclose(np.concatenate(single, 1)[0], np.concatenate(batched, 1)[2], atol=1e-5)


def test_batched_generation_equals_one_seed_at_a_time(stream_setup):
    vocab, _, model = stream_setup
    params = init_params(model, jax.random.key(0))
    seeds = ["ab", "abcdef", "g"]
    together = generate_batch(model, params, vocab, seeds, 12)
    assert together == [generate_text(model, params, vocab, s, 12) for s in seeds]
    sampled = generate_batch(model, params, vocab, seeds, 12, temperature=1.0, top_k=3, rng_seed=5)
    assert sampled == generate_batch(model, params, vocab, seeds, 12, temperature=1.0, top_k=3, rng_seed=5)
    assert all(len(s) == 12 for s in sampled)
