"""`from_keras` / `to_keras`: Keras 3 LSTM / GRU layers <-> lstm_jax with the same outputs
(1e-5: the same math in a different op order), and the round trips Keras -> lstm_jax -> Keras and
lstm_jax -> Keras -> lstm_jax giving bitwise-identical weights (so identical Keras outputs).
Skipped without keras. Each Keras layer's first call compiles, so the tests share few layers."""

import ast
import functools
import logging
import os
from pathlib import Path

import jax
import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras is imported; a no-op when set already
keras = pytest.importorskip("keras")

from lstm_jax import LSTM  # noqa: E402
from lstm_jax.errors import ArgumentError  # noqa: E402
from lstm_jax.nn import GRU  # noqa: E402
from lstm_jax.io import from_keras, to_keras  # noqa: E402

B, T, F, H = 3, 7, 5, 8
X = np.random.default_rng(0).standard_normal((B, T, F)).astype(np.float32)
LENGTHS = np.array([7, 4, 1])
MASK = np.arange(T)[None, :] < LENGTHS[:, None]  # right padding
ATOL = 1e-5


def _np(outputs):
    return [np.asarray(o) for o in outputs]


def _keras_states(state, is_gru):
    """Our final state in Keras' return_state order: h (, c) per direction, forward first."""
    return [a for s in state for a in ((s.h,) if is_gru else (s.h, s.c))]


def _build(layer, seed=0, features=F):
    """`layer` built on `features` inputs with random weights (a random bias too, unlike Keras' init)."""
    layer.build((None, None, features))
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    return layer


def _apply(module, variables, x, **kwargs):
    # One compiled program per call: much cheaper than flax's op-by-op eager dispatch.
    return jax.jit(lambda v, x: module.apply(v, x, **kwargs))(variables, x)


@functools.cache
def _keras_layer(kind):
    """(Keras `kind` layer with random weights, its outputs for X), made once per test session."""
    layer = _build(getattr(keras.layers, kind)(H, return_sequences=True, return_state=True))
    return layer, _np(layer(X))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_keras_to_ours_and_back(kind):
    keras_layer, want = _keras_layer(kind)
    module, variables = from_keras(keras_layer)
    assert type(module) is (GRU if kind == "GRU" else LSTM) and module.hidden_size == H
    outputs, state = _apply(module, variables, X)
    np.testing.assert_allclose(outputs, want[0], atol=ATOL, rtol=0)
    for got, expected in zip(_keras_states(state, kind == "GRU"), want[1:], strict=True):
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)

    back = to_keras(module, variables)
    assert type(back) is type(keras_layer) and back.return_sequences and back.zero_output_for_mask
    for got, expected in zip(back.get_weights(), keras_layer.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)  # bitwise: the gate reordering only moves values
    for got, expected in zip(_np(back(X)), want, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_masks_match_right_padding():
    """GRU masks are checked in both directions by test_bidirectional_and_go_backwards."""
    keras_layer, _ = _keras_layer("LSTM")
    want = _np(keras_layer(X, mask=MASK))
    module, variables = from_keras(keras_layer)
    outputs, state = _apply(module, variables, X, mask=MASK)
    for got, expected in zip(_keras_states(state, False), want[1:], strict=True):
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    # A standalone Keras layer repeats the last output at masked steps; ours are zero there
    # (as Keras' with zero_output_for_mask=True, which to_keras sets and Bidirectional forces).
    np.testing.assert_allclose(np.asarray(outputs)[MASK], want[0][MASK], atol=ATOL, rtol=0)
    assert not np.asarray(outputs)[~MASK].any()


def test_bidirectional_and_go_backwards():
    bi = _build(keras.layers.Bidirectional(keras.layers.GRU(H, return_sequences=True, return_state=True)))
    module, variables = from_keras(bi)
    assert module.bidirectional and module.num_layers == 1
    want = _np(bi(X, mask=MASK))
    outputs, state = _apply(module, variables, X, mask=MASK)
    np.testing.assert_allclose(outputs, want[0], atol=ATOL, rtol=0)  # zeros at masked steps on both sides
    for got, expected in zip(_keras_states(state, True), want[1:], strict=True):
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    back = to_keras(module, variables)
    assert isinstance(back, keras.layers.Bidirectional) and back.merge_mode == "concat"
    for got, expected in zip(back.get_weights(), bi.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)

    backwards = _build(keras.layers.LSTM(H, go_backwards=True, return_sequences=True, return_state=True), seed=1)
    module, variables = from_keras(backwards)
    assert module.reverse
    want = _np(backwards(X))
    outputs, state = _apply(module, variables, X)
    np.testing.assert_allclose(np.asarray(outputs)[:, ::-1], want[0], atol=ATOL, rtol=0)  # Keras' order
    for got, expected in zip(_keras_states(state, False), want[1:], strict=True):
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def _random_variables(module, seed):
    """Random float32 params of `module`'s shapes (numpy: nothing to compile)."""
    shapes = jax.eval_shape(module.init, jax.random.key(0), X)
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: rng.uniform(-0.5, 0.5, a.shape).astype(np.float32), shapes)


def test_ours_to_keras_to_ours():
    # Two layers come out as a list of two Keras layers, applied in turn.
    module = LSTM(H, num_layers=2, use_bias=False)
    variables = _random_variables(module, 0)
    layers = to_keras(module, variables)
    assert len(layers) == 2 and all(type(la) is keras.layers.LSTM for la in layers)
    assert len(layers[0].get_weights()) == 2  # no bias
    outputs, state = _apply(module, variables, X)
    seq, keras_states = X, []
    for layer in layers:
        seq, *states = _np(layer(seq))
        keras_states += states
    np.testing.assert_allclose(seq, outputs, atol=ATOL, rtol=0)
    for got, expected in zip(keras_states, _keras_states(state, False), strict=True):
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    again, again_vars = from_keras(layers)
    assert again == module.clone(unroll=again.unroll)  # every field
    jax.tree.map(np.testing.assert_array_equal, again_vars, variables)

    # A reversed GRU with recurrent dropout: go_backwards, and back through a keras.Sequential.
    module = GRU(H, reverse=True, recurrent_dropout=0.25)
    variables = _random_variables(module, 2)
    layer = to_keras(module, variables, return_state=False)
    assert layer.go_backwards and not layer.return_state and layer.cell.reset_after
    assert layer.cell.recurrent_dropout == 0.25
    again, again_vars = from_keras(keras.Sequential([layer]))
    assert again == module.clone(unroll=again.unroll)
    jax.tree.map(np.testing.assert_array_equal, again_vars, variables)


def test_dropout_rates(caplog):
    layer = keras.layers.LSTM(H, dropout=0.1, recurrent_dropout=0.2)
    layer.build((None, None, F))
    with caplog.at_level(logging.INFO, logger="lstm_jax.io._keras"):
        module, _ = from_keras(layer)
    assert module.recurrent_dropout == pytest.approx(0.2)
    assert "input dropout" in caplog.text


def _built(layer):
    layer.build((None, None, F))
    return layer


BAD_KERAS = {
    "not recurrent": (lambda: keras.layers.Dense(H), "expected a keras.layers.LSTM, GRU or Bidirectional"),
    "activation": (lambda: keras.layers.LSTM(H, activation="relu"), r"layer\.activation: expected tanh, found relu"),
    "recurrent activation": (
        lambda: keras.layers.GRU(H, recurrent_activation="hard_sigmoid"),
        r"layer\.recurrent_activation: expected sigmoid, found hard_sigmoid",
    ),
    "reset_after": (lambda: keras.layers.GRU(H, reset_after=False), "reset_after: .*expected True, found False"),
    "merge_mode": (
        lambda: keras.layers.Bidirectional(keras.layers.LSTM(H), merge_mode="sum"),
        "merge_mode: .*expected 'concat', found 'sum'",
    ),
    "not built": (lambda: keras.layers.LSTM(H), "no weights yet"),
    "mixed stack": (
        lambda: [_built(keras.layers.LSTM(H)), _built(keras.layers.GRU(H))],
        r"layer\[1\]: a stack shares .* expected \(False, 8, False, True, 0.0\) as layer\[0\], found \(True,",
    ),
    "go_backwards stack": (
        lambda: [_built(keras.layers.LSTM(H)), _built(keras.layers.LSTM(H, go_backwards=True))],
        r"layer\[1\]\.go_backwards: .*expected False",
    ),
    "stack sizes": (
        lambda: [_built(keras.layers.LSTM(H)), _built(keras.layers.LSTM(H))],
        r"layer\[1\]: expected 8 input features .*found 5",
    ),
    "empty": (lambda: [], "non-empty list"),
}


@pytest.mark.parametrize("make, message", BAD_KERAS.values(), ids=BAD_KERAS.keys())
def test_from_keras_refuses_what_it_cannot_compute(make, message):
    with pytest.raises(ArgumentError, match=message) as info:
        from_keras(make())
    assert "\n" not in str(info.value)


BAD_OURS = {
    "proj_size": (LSTM(H, proj_size=2), "proj_size: .*expected 0, found 2"),
    "layer_norm": (LSTM(H, layer_norm=True), "layer_norm: .*expected False"),
    "learned state": (GRU(H, learn_initial_state=True), "learn_initial_state: .*expected False"),
    "zoneout": (LSTM(H, zoneout=0.1), "zoneout: .*expected 0"),
    "reversed stack": (GRU(H, num_layers=2, reverse=True), "reverse: .*expected num_layers 1 .*found 2"),
    "not ours": (keras.layers.Dense(3), "expected an lstm_jax LSTM or GRU, found Dense"),
}


@pytest.mark.parametrize("module, message", BAD_OURS.values(), ids=BAD_OURS.keys())
def test_to_keras_refuses_what_keras_cannot_compute(module, message):
    with pytest.raises(ArgumentError, match=message) as info:
        to_keras(module, {})  # refused before the weights are looked at
    assert "\n" not in str(info.value)


def test_to_keras_needs_every_layer():
    with pytest.raises(ArgumentError, match="expected LSTM params with 'layer_1'"):
        to_keras(LSTM(H, num_layers=2), {"params": {"layer_0": {}}})


def test_keras_is_imported_lazily():
    """The library imports without keras: keras_convert imports it inside its functions only."""
    tree = ast.parse((Path(__file__).parents[2] / "lstm_jax" / "io" / "_keras.py").read_text("utf-8"))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any("keras" in ast.dump(n) for n in top)
