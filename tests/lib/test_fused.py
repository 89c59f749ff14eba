"""The fused recurrence (hand-written backward pass) against plain autodiff of `lstm_scan`.

Gradients are compared in float64, where the two differ only by rounding, for every
combination of mask, recurrent dropout, direction and batch groups.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax import LSTM
from lstm_jax.recurrence._fused import fused_lstm
from lstm_jax.recurrence import LSTMState
from lstm_jax.recurrence._scan import recurrence


def _inputs(steps=7, batch=4, hidden=5, features=3, seed=1):
    """float64 inputs of the recurrence (call under jax.enable_x64). NumPy draws them: jax.random
    under x64 compiles its samplers anew for every shape, which cost seconds per test."""
    rng = np.random.default_rng(seed)
    f64 = jnp.float64

    def normal(*shape, scale=1.0):
        return jnp.asarray(rng.standard_normal(shape) * scale, f64)

    return dict(
        x=normal(steps, batch, features),
        kernel_ih=normal(features, 4 * hidden, scale=0.5),
        kernel=normal(hidden, 4 * hidden, scale=0.5),
        bias=normal(4 * hidden, scale=0.3),
        c0=normal(batch, hidden),
        h0=normal(batch, hidden),
        mask=jnp.asarray(rng.random((steps, batch)) < 0.7),
        keep=jnp.asarray((rng.random((batch, hidden)) < 0.8) / 0.8, f64),
        cot=normal(steps, batch, hidden),
    )


def _loss(run, d, mask, keep):
    """A scalar that depends on the outputs and on both parts of the final state."""

    def loss(x, kernel_ih, kernel, bias, c0, h0):
        (c, h), out = run(x, kernel_ih, kernel, bias, c0, h0, mask, keep)
        return jnp.sum(out * d["cot"]) + jnp.sum(c * c) + jnp.sum(h**3)

    return jax.value_and_grad(loss, argnums=(0, 1, 2, 3, 4, 5))


def _reference(reverse):
    def run(x, kernel_ih, kernel, bias, c0, h0, mask, keep):
        state, out = recurrence(
            x, kernel_ih, kernel, bias, LSTMState(c0, h0), mask, h_keep=keep, reverse=reverse, implementation="scan"
        )
        return (state.c, state.h), out

    return run


@pytest.mark.parametrize(
    "masked,dropout,reverse,groups", list(itertools.product([False, True], [False, True], [False, True], [1, 2]))
)
def test_fused_value_and_gradients_match_autodiff(masked, dropout, reverse, groups):
    with jax.enable_x64(True):
        d = _inputs()
        mask, keep = (d["mask"] if masked else None), (d["keep"] if dropout else None)
        args = (d["x"], d["kernel_ih"], d["kernel"], d["bias"], d["c0"], d["h0"])
        fused = _loss(lambda *a: fused_lstm(*a, reverse, groups, 1), d, mask, keep)(*args)
        ref = _loss(_reference(reverse), d, mask, keep)(*args)
        for got, want in zip(jax.tree.leaves(fused), jax.tree.leaves(ref)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("steps,unroll,groups", [(1, 2, 1), (5, 3, 2), (8, 2, 4)])
@pytest.mark.parametrize("reverse", [False, True])
def test_fused_matches_autodiff_for_unroll_one_step_and_more_groups(steps, unroll, groups, reverse):
    with jax.enable_x64(True):
        d = _inputs(steps=steps)
        args = (d["x"], d["kernel_ih"], d["kernel"], d["bias"], d["c0"], d["h0"])
        got = _loss(lambda *a: fused_lstm(*a, reverse, groups, unroll), d, d["mask"], d["keep"])(*args)
        want = _loss(_reference(reverse), d, d["mask"], d["keep"])(*args)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_fused_second_order_reverse_gradients():
    from jax.test_util import check_grads

    layer = LSTM(hidden_size=3, num_layers=1, bidirectional=True)  # 2 layers: 2x the time, no new path
    x32 = np.random.default_rng(0).standard_normal((2, 4, 3))
    params32 = layer.init(jax.random.key(1), jnp.asarray(x32, jnp.float32))  # float32 init: see _inputs
    with jax.enable_x64(True):
        x = jnp.asarray(x32, jnp.float64)
        mask = jnp.array([[True, True, True, False], [False, True, True, True]])
        params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params32)

        def f(p, x):
            out, state = layer.apply(p, x, mask=mask)
            return jnp.sum(out**2) + sum(jnp.sum(s.c) for s in state)

        check_grads(f, (params, x), order=2, modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-6)


def test_layer_fused_and_scan_agree_with_padding_in_float32():
    x = jax.random.normal(jax.random.key(0), (6, 9, 4))
    lengths = jnp.array([9, 3, 5, 1, 9, 7])
    fused = LSTM(hidden_size=8, num_layers=2, bidirectional=True, batch_groups=2)
    scan = fused.clone(implementation="scan", batch_groups=1)
    params = fused.init(jax.random.key(1), x)

    def run(layer):
        def loss(p):
            out, state = layer.apply(p, x, lengths=lengths)
            return jnp.sum(jnp.sin(out)) + sum(jnp.sum(s.h) for s in state), (out, state)

        return jax.value_and_grad(loss, has_aux=True)(params)

    for got, want in zip(jax.tree.leaves(run(fused)), jax.tree.leaves(run(scan))):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def test_bad_implementation_and_batch_groups_are_clear_errors():
    x, kernel_ih, kernel = jnp.zeros((3, 4, 5)), jnp.zeros((5, 8)), jnp.zeros((2, 8))
    state = LSTMState(jnp.zeros((4, 2)), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="implementation: expected one of"):
        recurrence(x, kernel_ih, kernel, None, state, implementation="cudnn")
    with pytest.raises(ValueError, match="batch_groups: expected a divisor of the batch size 4, found 3"):
        recurrence(x, kernel_ih, kernel, None, state, batch_groups=3)
