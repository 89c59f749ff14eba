"""zoneout, weight_drop and layer_norm, each against a NumPy reference of its equations
(float64 reference, outputs within 1e-5), in training and in evaluation; and zoneout on the
fused path (hand-written backward pass) against autodiff of the scan path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax import LSTM
from lstm_jax.recurrence import LSTMState
from lstm_jax.recurrence._scan import recurrence

X = jax.random.normal(jax.random.key(0), (3, 6, 4))
H = 5


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def numpy_lstm(x, w, *, kernel_hh=None, zone=None, ln=None):
    """Reference LSTM over x float64[B, T, F] with weights w; zone(t, c_prev, c, h_prev, h) -> (c, h);
    ln: the layer-norm gains and biases (Ba et al. 2016, eqs. 20-22)."""
    kernel_hh = w["kernel_hh"] if kernel_hh is None else kernel_hh

    def norm(v, scale, bias):
        return (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-5) * scale + bias

    c = h = np.zeros((x.shape[0], H))
    outs = []
    for t in range(x.shape[1]):
        xw, hw = x[:, t] @ w["kernel_ih"], h @ kernel_hh
        if ln is not None:
            xw, hw = norm(xw, ln["ln_ih_scale"], ln["ln_ih_bias"]), norm(hw, ln["ln_hh_scale"], ln["ln_hh_bias"])
        i, f, g, o = np.split(xw + hw + w["bias"], 4, axis=-1)
        c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        c_out = c_new if ln is None else norm(c_new, ln["ln_c_scale"], ln["ln_c_bias"])
        h_new = sigmoid(o) * np.tanh(c_out)
        c, h = (c_new, h_new) if zone is None else zone(t, c, c_new, h, h_new)
        outs.append(h)
    return np.stack(outs, 1)


def _weights(variables):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"]["layer_0"])


def test_zoneout_keeps_previous_units_in_training_and_mixes_in_evaluation():
    layer = LSTM(H, zoneout=(0.5, 0.2))
    variables = layer.init(jax.random.key(1), X)
    w = _weights(variables)
    out, mutated = layer.apply(
        variables, X, deterministic=False, rngs={"dropout": jax.random.key(2)}, mutable=["intermediates"]
    )
    ((keep_c, keep_h),) = mutated["intermediates"]["zoneout_keep"]
    assert keep_c.shape == (6, 3, H) and 0.3 < float(keep_c.mean()) < 0.7
    kc, kh = np.asarray(keep_c), np.asarray(keep_h)

    def train_zone(t, c, c_new, h, h_new):
        return np.where(kc[t], c, c_new), np.where(kh[t], h, h_new)

    np.testing.assert_allclose(out[0], numpy_lstm(np.asarray(X, np.float64), w, zone=train_zone), atol=1e-5)

    def eval_zone(t, c, c_new, h, h_new):
        return 0.5 * c + 0.5 * c_new, 0.2 * h + 0.8 * h_new

    out_eval, _ = layer.apply(variables, X)
    np.testing.assert_allclose(out_eval, numpy_lstm(np.asarray(X, np.float64), w, zone=eval_zone), atol=1e-5)


@pytest.mark.parametrize("implementation", ["fused", "scan"])
def test_weight_drop_drops_recurrent_weights_once_per_call(implementation):
    layer = LSTM(H, weight_drop=0.4, implementation=implementation)
    variables = layer.init(jax.random.key(1), X)
    w = _weights(variables)
    out, mutated = layer.apply(
        variables, X, deterministic=False, rngs={"dropout": jax.random.key(3)}, mutable=["intermediates"]
    )
    (keep,) = mutated["intermediates"]["weight_keep"]
    assert keep.shape == w["kernel_hh"].shape and 0.4 < float(keep.mean()) < 0.8
    dropped = np.where(np.asarray(keep), w["kernel_hh"] / 0.6, 0.0)
    np.testing.assert_allclose(out[0], numpy_lstm(np.asarray(X, np.float64), w, kernel_hh=dropped), atol=1e-5)
    plain = layer.clone(weight_drop=0.0)
    np.testing.assert_array_equal(layer.apply(variables, X)[0], plain.apply(variables, X)[0])  # evaluation: off


def test_layer_norm_matches_the_ln_lstm_equations_and_trains_its_gains():
    layer = LSTM(H, layer_norm=True)
    variables = layer.init(jax.random.key(1), X)
    params = jax.tree.map(lambda a: a + 0.2 * jax.random.normal(jax.random.key(4), a.shape), variables["params"])
    w = _weights({"params": params})
    out, _ = layer.apply({"params": params}, X)
    np.testing.assert_allclose(out, numpy_lstm(np.asarray(X, np.float64), w, ln=w), atol=1e-5)
    grads = jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, X)[0] ** 2))(params)
    for name in ("ln_ih_scale", "ln_hh_bias", "ln_c_scale"):
        assert float(jnp.abs(grads["layer_0"][name]).sum()) > 0


def test_regularisers_combine_with_masks_resets_and_bidirectional():
    layer = LSTM(H, num_layers=2, bidirectional=True, zoneout=0.1, weight_drop=0.2, layer_norm=True)
    variables = layer.init(jax.random.key(1), X)
    mask = jnp.arange(6)[None] < jnp.array([6, 4, 2])[:, None]
    reset = jnp.zeros((3, 6), bool).at[:, 3].set(True)

    def loss(p):
        out, _ = layer.apply(p, X, mask=mask, reset=reset, deterministic=False, rngs={"dropout": jax.random.key(5)})
        return jnp.sum(out**2)

    value, grads = jax.jit(jax.value_and_grad(loss))(variables)
    assert np.isfinite(value) and all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def _zoneout_settings(dtype):
    """Recurrence inputs (T=7, B=4, F=3, H=6; padding mask, resets) and three zoneout settings
    (zoneout, reverse, batch_groups, h_keep): training masks for c and h forward with groups and
    recurrent dropout; evaluation rates in reverse; a training mask for h only, in reverse with
    groups. NumPy draws: jax.random would compile a sampler per shape and dtype, for seconds."""
    rng = np.random.default_rng(7)
    steps, batch, hidden = 7, 4, 6
    shapes = [(steps, batch, 3), (3, 4 * hidden), (hidden, 4 * hidden), (4 * hidden,), (batch, hidden), (batch, hidden)]
    scales = [1.0, 0.5, 0.5, 0.3, 1.0, 1.0]
    args = [jnp.asarray(rng.standard_normal(shape) * scale, dtype) for shape, scale in zip(shapes, scales)]
    args.append(jnp.asarray(rng.standard_normal((steps, batch, hidden)), dtype))  # the outputs' cotangent
    mask, reset = jnp.asarray(rng.random((steps, batch)) < 0.7), jnp.asarray(rng.random((steps, batch)) < 0.2)
    keep_c = jnp.asarray(rng.random((steps, batch, hidden)) < 0.5)
    keep_h = jnp.asarray(rng.random((steps, batch, hidden)) < 0.3)
    h_keep = jnp.asarray((rng.random((batch, hidden)) < 0.8) / 0.8, dtype)
    settings = [
        ((keep_c, keep_h), False, 2, h_keep),
        ((jnp.float32(0.5), jnp.float32(0.05)), True, 1, None),
        ((None, keep_h), True, 2, None),
    ]
    return args, mask, reset, settings


def _zoneout_loss(implementation, mask, reset, setting):
    """A loss on the outputs and both parts of the final state, and the outputs."""
    zone, reverse, groups, h_keep = setting

    def loss(x, kernel_ih, kernel_hh, bias, c0, h0, cot):
        state, out = recurrence(
            *(x, kernel_ih, kernel_hh, bias, LSTMState(c0, h0), mask),
            h_keep=h_keep,
            reset=reset,
            zoneout=zone,
            reverse=reverse,
            implementation=implementation,
            batch_groups=groups if implementation == "fused" else 1,
        )
        return jnp.sum(out * cot) + jnp.sum(state.c**2) + jnp.sum(state.h**3), out

    return loss


def test_fused_zoneout_matches_scan_in_float32_and_float64_autodiff():
    """The fused path's zoneout (hand-written backward pass) against autodiff of `lstm_scan`:
    outputs in float32; values and gradients (x, kernels, bias, initial state) in float64, where
    the two differ only by rounding. One compiled function, without LLVM optimisation (compile
    time is most of this test)."""
    with jax.enable_x64(True):
        args64, mask, reset, settings64 = _zoneout_settings(jnp.float64)
        args32, _, _, settings32 = _zoneout_settings(jnp.float32)

        def run(args64, args32):
            outs, grads = {}, {}
            for impl in ("fused", "scan"):
                outs[impl] = [_zoneout_loss(impl, mask, reset, s)(*args32)[1] for s in settings32]
                grads[impl] = [
                    jax.value_and_grad(_zoneout_loss(impl, mask, reset, s), argnums=range(6), has_aux=True)(*args64)
                    for s in settings64
                ]
            return outs, grads

        compiled = jax.jit(run).lower(args64, args32).compile({"xla_backend_optimization_level": 0})
        outs, grads = compiled(args64, args32)
    for got, want in zip(outs["fused"], outs["scan"]):
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    for got, want in zip(jax.tree.leaves(grads["fused"]), jax.tree.leaves(grads["scan"])):
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
