"""Resets inside a window: `reset` bool[B, T] zeroes the state where a new segment starts.

A window with resets equals its segments run separately from zero state: outputs and final
states bitwise on the fused path (within 1e-6 on the scan path), gradients within 1e-6 (the
loop runs a different number of steps, which changes the rounding of a few sums), and the
fused and scan paths within 1e-6 of each other. The fused path's hand-written backward pass
with resets is checked against autodiff of the scan in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax import LSTM
from lstm_jax.io._datasets import stream_batches
from lstm_jax.recurrence import LSTMState
from lstm_jax.recurrence._scan import recurrence

STARTS = (0, 3, 4)  # segments [0, 3), [3, 4), [4, 8)
X = jax.random.normal(jax.random.key(0), (3, 8, 4))


def _close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def _layer(implementation, **kw):
    layer = LSTM(5, num_layers=2, bidirectional=True, implementation=implementation, **kw)
    return layer, layer.init(jax.random.key(1), X)


def _at_default_level(fn):
    """fn jitted and compiled at XLA's default optimisation level (3) rather than the tests' 0
    (tests/conftest.py): the bitwise claims here are about what users run, and the LLVM level
    may move the last bit differently in the two programs compared."""

    def run(*args):
        return jax.jit(fn).lower(*args).compile({"xla_backend_optimization_level": 3})(*args)

    return run


def _loss(layer, **kw):
    def loss(p, x):
        out, state = layer.apply(p, x, **kw)
        return jnp.sum(jnp.sin(out)), (out, state)

    return _at_default_level(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))


@pytest.mark.parametrize("implementation", ["fused", "scan", "native"])
def test_reset_equals_segments_run_separately(implementation):
    layer, params = _layer(implementation)
    reset = jnp.zeros((3, 8), bool).at[:, STARTS[1:]].set(True)
    (_, (out, state)), (g_params, g_x) = _loss(layer, reset=reset)(params, X)
    bounds = list(zip(STARTS, STARTS[1:] + (8,)))
    pieces = [_loss(layer)(params, X[:, a:b]) for a, b in bounds]
    # Bitwise on the fused path, whose per-step matmuls have the same shapes in both runs; the
    # scan and native paths hoist x W_ih into one matmul over all T steps, whose rounding depends
    # on T (native: up to 1.5e-8 apart, measured).
    same = np.testing.assert_array_equal if implementation == "fused" else _close
    same(out, jnp.concatenate([p[0][1][0] for p in pieces], 1))
    np.testing.assert_allclose(g_x, jnp.concatenate([p[1][1] for p in pieces], 1), rtol=1e-6, atol=1e-6)
    first, last = pieces[0][0][1][1], pieces[-1][0][1][1]
    for k, s in enumerate(state):  # forward directions end in the last segment, reverse ones in the first
        want = last[k] if k % 2 == 0 else first[k]
        same(s.c, want.c)
        same(s.h, want.h)
    summed = jax.tree.map(lambda *g: sum(g), *[p[1][0] for p in pieces])
    for got, want in zip(jax.tree.leaves(g_params), jax.tree.leaves(summed)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_per_row_resets_equal_each_row_alone():
    layer, params = _layer("fused")
    reset = jnp.zeros((3, 8), bool).at[0, 5].set(True).at[2, jnp.array([3, 7])].set(True)
    out, _ = layer.apply(params, X, reset=reset)
    for row, starts in enumerate([(0, 5), (0,), (0, 3, 7)]):
        ends = starts[1:] + (8,)
        want = jnp.concatenate([layer.apply(params, X[row : row + 1, a:b])[0] for a, b in zip(starts, ends)], 1)
        np.testing.assert_allclose(out[row], want[0], atol=1e-6)


def test_fused_and_scan_agree_with_resets_masks_and_dropout():
    reset = jax.random.bernoulli(jax.random.key(2), 0.2, (3, 8))
    mask = jax.random.bernoulli(jax.random.key(3), 0.8, (3, 8))
    rngs = {"dropout": jax.random.key(4)}
    fused, params = _layer("fused", recurrent_dropout=0.3, weight_drop=0.2)
    scan = fused.clone(implementation="scan")
    kw = dict(reset=reset, mask=mask, deterministic=False, rngs=rngs)
    got, want = _loss(fused, **kw)(params, X), _loss(scan, **kw)(params, X)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("reverse,groups", [(False, 1), (True, 2)])
def test_fused_backward_with_resets_matches_autodiff_in_float64(reverse, groups):
    with jax.enable_x64(True):
        rng = np.random.default_rng(5)  # not jax.random: under x64 it compiles its samplers anew
        steps, batch, hidden, features = 7, 4, 5, 3

        def normal(*shape, scale=1.0):
            return jnp.asarray(rng.standard_normal(shape) * scale, jnp.float64)

        x = normal(steps, batch, features)
        kernel_ih = normal(features, 4 * hidden, scale=0.5)
        kernel_hh = normal(hidden, 4 * hidden, scale=0.5)
        bias = normal(4 * hidden, scale=0.3)
        c0, h0 = normal(batch, hidden), normal(batch, hidden)
        mask = jnp.asarray(rng.random((steps, batch)) < 0.7)
        reset = jnp.asarray(rng.random((steps, batch)) < 0.3)

        def loss(run):
            def f(*args):
                (c, h), out = run(*args)
                return jnp.sum(out**2) + jnp.sum(c * c) + jnp.sum(h**3)

            return jax.value_and_grad(f, argnums=tuple(range(6)))(x, kernel_ih, kernel_hh, bias, c0, h0)

        def ref(*a):
            s, out = recurrence(
                *a[:4], LSTMState(a[4], a[5]), mask, reset=reset, reverse=reverse, implementation="scan"
            )
            return (s.c, s.h), out

        def fused(*a):
            s, out = recurrence(*a[:4], LSTMState(a[4], a[5]), mask, reset=reset, reverse=reverse, batch_groups=groups)
            return (s.c, s.h), out

        for g, w in zip(jax.tree.leaves(loss(fused)), jax.tree.leaves(loss(ref))):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("implementation", ["fused", "scan"])
def test_reset_at_the_first_step_discards_the_initial_state(implementation):
    layer = LSTM(5, num_layers=2, implementation=implementation)
    params = layer.init(jax.random.key(1), X)
    state = tuple(LSTMState(jnp.ones((3, 5)), jnp.ones((3, 5))) for _ in range(2))
    reset = jnp.zeros((3, 8), bool).at[:, 0].set(True)
    with_reset = _at_default_level(lambda p, x, s, r: layer.apply(p, x, s, reset=r)[0])(params, X, state, reset)
    np.testing.assert_array_equal(with_reset, _at_default_level(lambda p, x: layer.apply(p, x)[0])(params, X))


def test_bad_reset_shape_is_a_clear_error():
    layer, params = _layer("fused")
    with pytest.raises(ValueError, match=r"reset: expected bool\[B, T\] of shape \(3, 8\), found \(3, 9\)"):
        layer.apply(params, X, reset=jnp.zeros((3, 9), bool))


def test_stream_batches_marks_document_starts():
    docs = [np.arange(1, 8), np.arange(20, 25), np.arange(40, 53)]
    ids = np.concatenate(docs)
    starts = np.zeros(len(ids), bool)
    starts[np.cumsum([0] + [len(d) for d in docs[:-1]])] = True
    batches, reset = stream_batches(ids, batch_size=2, seq_length=4, doc_starts=starts)
    np.testing.assert_array_equal(batches, stream_batches(ids, 2, 4))  # the windows are unchanged
    assert reset.shape == batches[..., :-1].shape and reset.dtype == bool
    np.testing.assert_array_equal(reset, np.isin(batches[..., :-1], [1, 20, 40]))
    with pytest.raises(ValueError, match=r"doc_starts: expected bool\[25\]"):
        stream_batches(ids, 2, 4, doc_starts=starts[:-1])
