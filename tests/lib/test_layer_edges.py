"""Edges of the layer (issue 17): values at padded steps, empty sequences, degenerate sizes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax import LSTM
from lstm_jax.errors import ArgumentError

X = jax.random.normal(jax.random.key(0), (3, 6, 4))
MASK = jnp.array([[True] * 6, [True, True, True, False, False, False], [False, False, True, True, True, True]])


@pytest.mark.parametrize("implementation", ["fused", "scan"])
def test_a_padded_step_does_not_matter_whatever_its_value(implementation):
    layer = LSTM(5, num_layers=2, bidirectional=True, implementation=implementation)
    params = layer.init(jax.random.key(1), X)

    def loss(p, x):
        out, state = layer.apply(p, x, mask=MASK)
        return jnp.sum(out**2) + sum(jnp.sum(s.c) for s in state)

    grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    clean = grads(params, X)
    for bad in (jnp.nan, jnp.inf, -1e30):
        dirty = grads(params, jnp.where(MASK[..., None], X, bad))
        for a, b in zip(jax.tree.leaves(clean), jax.tree.leaves(dirty)):
            np.testing.assert_array_equal(a, b)  # parameter and input gradients: finite and unchanged


def test_a_sequence_of_length_zero_gives_the_initial_state_on_both_paths():
    x = jnp.zeros((2, 0, 4))
    results = []
    for implementation in ("fused", "scan"):
        layer = LSTM(5, num_layers=2, bidirectional=True, implementation=implementation)
        params = layer.init(jax.random.key(1), X)
        state = layer.initial_state(2)
        out, final = layer.apply(params, x, state)

        def loss(p, layer=layer):
            return sum(jnp.sum(s.h) for s in layer.apply(p, x)[1])

        grads = jax.grad(loss)(params)
        assert out.shape == (2, 0, 10)
        results.append((out, final, grads))
        for got, want in zip(jax.tree.leaves(final), jax.tree.leaves(state)):
            np.testing.assert_array_equal(got, want)
    for a, b in zip(jax.tree.leaves(results[0]), jax.tree.leaves(results[1])):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs,x,message",
    [
        (dict(hidden_size=4, num_layers=0), X, r"^num_layers: expected an integer >= 1, found 0(\n|$)"),
        (dict(hidden_size=0), X, r"^hidden_size: expected an integer >= 1, found 0(\n|$)"),
        (
            dict(hidden_size=4),
            jnp.zeros((3, 6, 0)),
            r"^x: expected at least one input feature .* found shape \(3, 6, 0\)(\n|$)",
        ),
        (dict(hidden_size=4, dropout=1.0), X, r"^dropout: expected a rate in \[0, 1\), found 1.0(\n|$)"),
        (dict(hidden_size=4, zoneout=(0.1, -0.5)), X, r"^zoneout: expected a rate in \[0, 1\), found -0.5(\n|$)"),
    ],
)
def test_degenerate_sizes_are_one_line_argument_errors(kwargs, x, message):
    with pytest.raises(ArgumentError, match=message):  # \n: JAX appends a note to the one line
        LSTM(**kwargs).init(jax.random.key(0), x)
