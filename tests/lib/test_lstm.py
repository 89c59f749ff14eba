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
        i, f, g, o = (z[:, k * hidden : (k + 1) * hidden] for k in range(4))
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


def test_scan_equals_a_python_loop_over_the_cell(layer_and_vars):
    from lstm_jax.recurrence import zeros_state
    from lstm_jax.recurrence._scan import cell

    layer, variables, x = layer_and_vars
    w = variables["params"]["layer_0"]
    state = zeros_state(3, 8)
    outs = []
    for t in range(x.shape[1]):
        state = cell(x[:, t] @ w["kernel_ih"] + w["bias"] + state.h @ w["kernel_hh"], state.c)
        outs.append(state.h)
    out, (final,) = layer.apply(variables, x)
    np.testing.assert_allclose(out, jnp.stack(outs, 1), atol=1e-6)
    np.testing.assert_allclose(final.c, state.c, atol=1e-6)


def test_gradients_pass_a_float64_numerical_check():
    from jax.test_util import check_grads

    layer = LSTM(hidden_size=3, num_layers=2, proj_size=2)
    # Inputs from NumPy and parameters initialised in float32, then widened: jax.random under
    # x64 compiles its samplers anew, which cost seconds.
    x32 = np.random.default_rng(0).standard_normal((2, 4, 3))
    params32 = layer.init(jax.random.key(1), jnp.asarray(x32, jnp.float32))["params"]
    with jax.enable_x64(True):
        x = jnp.asarray(x32, jnp.float64)
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params32)
        mask = jnp.array([[True] * 4, [False, True, True, False]])

        def f(params, x):
            out, state = layer.apply({"params": params}, x, mask=mask)
            return jnp.sum(out**2) + jnp.sum(state[-1].c)

        check_grads(f, (params, x), order=2, modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-6)


def test_reverse_only_direction_is_forward_on_the_flipped_sequence(layer_and_vars):
    _, variables, x = layer_and_vars
    rev_out, (rev_state,) = LSTM(8, reverse=True).apply(variables, x)
    fwd_out, (fwd_state,) = LSTM(8).apply(variables, x[:, ::-1])
    np.testing.assert_allclose(rev_out, fwd_out[:, ::-1], atol=1e-6)
    np.testing.assert_allclose(rev_state.h, fwd_state.h, atol=1e-6)


@pytest.mark.parametrize("padding", ["right", "left"])
def test_bidirectional_padding_matches_unpadded_rows(padding):
    layer = LSTM(hidden_size=4, num_layers=2, bidirectional=True)
    x = jax.random.normal(jax.random.key(0), (2, 6, 3))
    variables = layer.init(jax.random.key(1), x)
    lengths = [6, 3]
    if padding == "right":
        mask = jnp.arange(6)[None] < jnp.array(lengths)[:, None]
    else:
        mask = jnp.arange(6)[None] >= 6 - jnp.array(lengths)[:, None]
    x = jnp.where(mask[..., None], x, 0.0)
    out, state = layer.apply(variables, x, mask=mask)
    assert out.shape == (2, 6, 8)
    real = x[1][mask[1]][None]  # row 1 without its padding
    ref_out, ref_state = layer.apply(variables, real)
    np.testing.assert_allclose(out[1][mask[1]], ref_out[0], atol=1e-6)
    for got, want in zip(state, ref_state):  # backward directions start at the row's true end
        np.testing.assert_allclose(got.h[1], want.h[0], atol=1e-6)
        np.testing.assert_allclose(got.c[1], want.c[0], atol=1e-6)


def test_recurrent_dropout_uses_one_mask_for_every_step(layer_and_vars):
    _, variables, x = layer_and_vars
    layer = LSTM(8, recurrent_dropout=0.5)
    out, mutated = layer.apply(
        variables, x, deterministic=False, rngs={"dropout": jax.random.key(7)}, mutable=["intermediates"]
    )
    (h_keep,) = mutated["intermediates"]["recurrent_keep"]
    assert h_keep.shape == (3, 8) and set(np.unique(h_keep)) == {0.0, 2.0}
    w = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"]["layer_0"])
    # Reference: the same keep-mask multiplies h before the recurrent matmul at every step.
    c = h = np.zeros((3, 8))
    outs = []
    for t in range(x.shape[1]):
        z = np.asarray(x[:, t], np.float64) @ w["kernel_ih"] + (h * np.asarray(h_keep)) @ w["kernel_hh"] + w["bias"]
        i, f, g, o = np.split(z, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outs.append(h)
    np.testing.assert_allclose(out[0], np.stack(outs, 1), atol=1e-5)
    np.testing.assert_array_equal(layer.apply(variables, x)[0], LSTM(8).apply(variables, x)[0])


def test_dropout_between_layers_only_when_not_deterministic():
    layer = LSTM(hidden_size=8, num_layers=2, dropout=0.5)
    x = jax.random.normal(jax.random.key(0), (2, 5, 3))
    variables = layer.init(jax.random.key(1), x)
    plain = LSTM(hidden_size=8, num_layers=2).apply(variables, x)[0]
    np.testing.assert_array_equal(layer.apply(variables, x)[0], plain)
    dropped = layer.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(2)})[0]
    assert not np.allclose(dropped, plain)


def test_learnable_initial_state_gets_gradients(layer_and_vars):
    _, _, x = layer_and_vars
    layer = LSTM(8, num_layers=2, learn_initial_state=True)
    params = layer.init(jax.random.key(0), x)["params"]
    assert params["initial_c"].shape == (2, 8) and params["initial_h"].shape == (2, 8)
    grads = jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, x)[0]))(params)
    assert np.abs(grads["initial_h"]).sum() > 0 and np.abs(grads["initial_c"]).sum() > 0
    # An explicit initial state overrides the learned one (made non-zero first, so it matters).
    params = {**params, "initial_h": params["initial_h"] + 0.5, "initial_c": params["initial_c"] - 0.5}
    assert not np.allclose(layer.apply({"params": params}, x)[0], LSTM(8, num_layers=2).apply({"params": params}, x)[0])
    zeros = layer.initial_state(3)
    np.testing.assert_array_equal(
        layer.apply({"params": params}, x, zeros)[0], LSTM(8, num_layers=2).apply({"params": params}, x)[0]
    )


def test_wrong_initial_state_is_a_clear_error(layer_and_vars):
    layer, variables, x = layer_and_vars
    with pytest.raises(ValueError, match=r"initial_state\[0\]: expected c\[3, 8\] h\[3, 8\], found c\[2, 8\]"):
        layer.apply(variables, x, LSTM(8).initial_state(2))
