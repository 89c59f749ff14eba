"""The recurrence against a NumPy reference of the gate equations; masks; state and resets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax import LSTM, LSTMState, reset_state


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_lstm(x, kernel_ih, kernel_hh, bias, c, h):
    """Reference: x float64[B, T, F]; gate order i, f, g, o; returns outputs and final (c, h)."""
    hidden = kernel_hh.shape[0]
    outputs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel_ih + h @ kernel_hh + bias
        i, f, g, o = (z[:, k * hidden:(k + 1) * hidden] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, 1), c, h


@pytest.fixture
def layer_and_vars():
    layer = LSTM(hidden_size=8, num_layers=1)
    x = jax.random.normal(jax.random.key(1), (3, 7, 5))
    variables = layer.init(jax.random.key(0), x)
    # Non-trivial bias so every gate's bias is exercised.
    bias = variables["params"]["layer_0"]["bias"] + jax.random.normal(jax.random.key(2), (32,)) * 0.5
    variables = {"params": {"layer_0": {**variables["params"]["layer_0"], "bias": bias}}}
    return layer, variables, x


def test_matches_numpy_reference_with_initial_state(layer_and_vars):
    layer, variables, x = layer_and_vars
    w = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"]["layer_0"])
    c0 = np.asarray(jax.random.normal(jax.random.key(3), (3, 8)))
    h0 = np.asarray(jax.random.normal(jax.random.key(4), (3, 8)))
    out, (final,) = layer.apply(variables, x, (LSTMState(jnp.asarray(c0), jnp.asarray(h0)),))
    ref_out, ref_c, ref_h = numpy_lstm(np.asarray(x, np.float64), w["kernel_ih"], w["kernel_hh"], w["bias"], c0, h0)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    np.testing.assert_allclose(final.c, ref_c, atol=1e-5)
    np.testing.assert_allclose(final.h, ref_h, atol=1e-5)


def test_initialisation_forget_bias_and_orthogonal_recurrent_kernel(layer_and_vars):
    layer, _, x = layer_and_vars
    params = layer.init(jax.random.key(0), x)["params"]["layer_0"]
    np.testing.assert_array_equal(params["bias"][8:16], 1.0)
    np.testing.assert_array_equal(params["bias"][:8], 0.0)
    k = np.asarray(params["kernel_hh"])  # [H, 4H] with orthonormal rows
    np.testing.assert_allclose(k @ k.T, np.eye(8), atol=1e-5)


def test_state_carried_across_calls_equals_one_long_call(layer_and_vars):
    layer, variables, x = layer_and_vars
    full, full_state = layer.apply(variables, x)
    first, state = layer.apply(variables, x[:, :4])
    second, state = layer.apply(variables, x[:, 4:], state)
    np.testing.assert_allclose(jnp.concatenate([first, second], 1), full, atol=1e-6)
    np.testing.assert_allclose(state[0].h, full_state[0].h, atol=1e-6)


def test_right_and_left_padding_match_unpadded(layer_and_vars):
    layer, variables, x = layer_and_vars
    length = 4
    ref_out, (ref_state,) = layer.apply(variables, x[:1, :length])
    right = jnp.zeros_like(x[:1]).at[:, :length].set(x[:1, :length])
    out_r, (state_r,) = layer.apply(variables, right, lengths=jnp.array([length]))
    np.testing.assert_allclose(out_r[:, :length], ref_out, atol=1e-6)
    np.testing.assert_array_equal(out_r[:, length:], 0.0)
    np.testing.assert_allclose(state_r.c, ref_state.c, atol=1e-6)

    pad = x.shape[1] - length
    left = jnp.zeros_like(x[:1]).at[:, pad:].set(x[:1, :length])
    mask = jnp.arange(x.shape[1])[None] >= pad
    out_l, (state_l,) = layer.apply(variables, left, mask=mask)
    np.testing.assert_allclose(out_l[:, pad:], ref_out, atol=1e-6)
    np.testing.assert_allclose(state_l.h, ref_state.h, atol=1e-6)


def test_masked_step_in_the_middle_leaves_state_untouched(layer_and_vars):
    layer, variables, x = layer_and_vars
    mask = jnp.ones((3, 7), bool).at[:, 3].set(False)
    out, (state,) = layer.apply(variables, x, mask=mask)
    kept = jnp.concatenate([x[:, :3], x[:, 4:]], 1)
    ref_out, (ref_state,) = layer.apply(variables, kept)
    np.testing.assert_allclose(state.c, ref_state.c, atol=1e-6)
    np.testing.assert_allclose(out[:, 4:], ref_out[:, 3:], atol=1e-6)


def test_reset_state_zeroes_only_selected_rows():
    state = (LSTMState(c=jnp.ones((3, 2)), h=jnp.full((3, 2), 2.0)),)
    out = reset_state(state, jnp.array([False, True, False]))
    np.testing.assert_array_equal(out[0].c, [[1, 1], [0, 0], [1, 1]])
    np.testing.assert_array_equal(out[0].h, [[2, 2], [0, 0], [2, 2]])


def test_stacked_layers_feed_each_other():
    layer = LSTM(hidden_size=4, num_layers=2)
    x = jax.random.normal(jax.random.key(0), (2, 5, 3))
    variables = layer.init(jax.random.key(1), x)
    out, state = layer.apply(variables, x)
    assert out.shape == (2, 5, 4) and len(state) == 2
    first = LSTM(4).apply({"params": {"layer_0": variables["params"]["layer_0"]}}, x)[0]
    second = LSTM(4).apply({"params": {"layer_0": variables["params"]["layer_1"]}}, first)[0]
    np.testing.assert_allclose(out, second, atol=1e-6)


def test_lengths_and_mask_together_is_an_error(layer_and_vars):
    layer, variables, x = layer_and_vars
    with pytest.raises(ValueError, match="either lengths or mask"):
        layer.apply(variables, x, lengths=jnp.array([1, 2, 3]), mask=jnp.ones((3, 7), bool))
