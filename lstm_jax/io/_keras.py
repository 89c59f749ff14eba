"""Convert between Keras 3 `LSTM` / `GRU` layers and `lstm_jax.LSTM` / `lstm_jax.GRU`.

Keras stores, per layer and direction, kernel float[F, G*H], recurrent_kernel float[H, G*H]
and a bias: float[4H] for the LSTM, float[2, 3H] for the GRU with reset_after=True (row 0
the input bias, row 1 the recurrent bias). Keras' LSTM gate order i, f, c, o is ours (i, f,
g, o), so its weights are ours unchanged; its GRU gate order z, r, h is ours r, z, n with the
first two blocks swapped (a swap is its own inverse, so one helper goes both ways). Keras'
reset_after=True GRU is the cuDNN / torch formulation ours computes, with b_hn inside
r * (...). Keras is imported lazily, so this module costs nothing for users without it; it
sets no backend (weights travel as numpy arrays, whatever backend Keras runs on).
"""

from __future__ import annotations

import logging

import numpy as np

from lstm_jax.errors import ArgumentError
from lstm_jax.nn._layers import LSTM

log = logging.getLogger(__name__)


def _swap_rz(a, hidden: int) -> np.ndarray:
    """Keras' [z, r, h] gate blocks on the last axis as our [r, z, n], and back again."""
    a = np.asarray(a, dtype=np.float32)
    return np.concatenate([a[..., hidden : 2 * hidden], a[..., :hidden], a[..., 2 * hidden :]], axis=-1)


def _name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _check_cell(keras, where: str, layer) -> tuple[bool, object]:
    """(is_gru, cell) of a Keras recurrent layer ours can compute; ArgumentError otherwise."""
    cell = getattr(layer, "cell", None)
    is_gru = isinstance(cell, keras.layers.GRUCell)
    if not isinstance(layer, keras.layers.RNN) or not (is_gru or isinstance(cell, keras.layers.LSTMCell)):
        raise ArgumentError(
            f"{where}: expected a keras.layers.LSTM, GRU or Bidirectional (of one), found {type(layer).__name__}"
        )
    # Our cells hard-wire tanh and sigmoid; anything else would convert silently into other math.
    for attr, want in (("activation", keras.activations.tanh), ("recurrent_activation", keras.activations.sigmoid)):
        if getattr(cell, attr) is not want:
            raise ArgumentError(f"{where}.{attr}: expected {want.__name__}, found {_name(getattr(cell, attr))}")
    if is_gru and not cell.reset_after:
        # reset_after=False applies r to h before the recurrent matmul: a different GRU than ours.
        raise ArgumentError(
            f"{where}.reset_after: lstm_jax's GRU is the reset_after=True form; expected True, found False"
        )
    if not cell.built:
        raise ArgumentError(f"{where}: the layer has no weights yet; call it on an input or build(input_shape) first")
    return is_gru, cell


def _weights(keras, is_gru: bool, cell, hidden: int) -> dict:
    """Our weights of one layer and direction from a built Keras cell."""

    def f32(variable):
        return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)

    kernel, recurrent = f32(cell.kernel), f32(cell.recurrent_kernel)
    if not is_gru:
        w = {"kernel_ih": kernel, "kernel_hh": recurrent}
        if cell.use_bias:
            w["bias"] = f32(cell.bias)
        return w
    w = {"kernel_ih": _swap_rz(kernel, hidden), "kernel_hh": _swap_rz(recurrent, hidden)}
    if cell.use_bias:
        bias = f32(cell.bias)  # [2, 3H]: input, recurrent
        w["bias_ih"], w["bias_hh"] = _swap_rz(bias[0], hidden), _swap_rz(bias[1], hidden)
    return w


def _layers(keras, layer) -> list:
    """The recurrent layers of `layer`: itself, or the layers of a list or a keras.Sequential."""
    if isinstance(layer, keras.Sequential):
        return list(layer.layers)  # the InputLayer is not among them
    if isinstance(layer, (list, tuple)):
        if not layer:
            raise ArgumentError("layer: expected a Keras LSTM/GRU layer or a non-empty list of them, found []")
        return list(layer)
    return [layer]


def from_keras(layer, *, unroll: int = 2):
    """(module, variables) computing what the Keras 3 recurrent `layer` computes (in inference).

    `layer`: a built `keras.layers.LSTM` or `keras.layers.GRU` (or a `keras.layers.RNN` around an
    `LSTMCell` / `GRUCell`), a `keras.layers.Bidirectional` of one with merge_mode="concat", or a
    list / `keras.Sequential` of such layers stacked (same type, units, use_bias,
    recurrent_dropout and bidirectionality, each reading the previous one's sequence output).

    For x float32[B, T, F], `module.apply(variables, x)` returns (outputs float32[B, T, D * H],
    state): outputs are Keras' `return_sequences=True` output and state holds its
    `return_state=True` states, per layer and direction (`LSTMState(c, h)` where Keras returns
    [h, c]). Keras masks (a `mask=` argument or a `Masking` layer upstream) go to our `mask=` or
    `lengths=`: the states agree; at masked steps our outputs are zero, as Keras' with
    zero_output_for_mask=True (a standalone Keras layer repeats the previous output instead).

    go_backwards=True maps to our `reverse=True`; Keras returns that direction's outputs in
    reversed time order, ours in input order (`outputs[:, ::-1]` is Keras'). Keras'
    recurrent_dropout becomes ours (Gal & Ghahramani's dropout on h before the recurrent matmul,
    one mask per sequence; Keras draws one mask per gate, we draw one for all gates); Keras'
    input `dropout` has no counterpart and is left out with a log message (training only).
    Weights are float32. `unroll` is our scan's steps per loop iteration. Only weights travel:
    a stateful Keras layer's stored states do not (ours are explicit: pass them as
    `initial_state`), nor do regularizers, constraints and initializers.

    Refused with an ArgumentError: activation other than tanh, recurrent_activation other than
    sigmoid, a GRU with reset_after=False, merge_mode other than "concat", a layer without
    weights (not built), go_backwards inside a stack (its reversed output would feed the next
    layer), and stacks that differ in any of the fields above.
    """
    import keras

    layers = _layers(keras, layer)
    plans = []  # per layer: (where, is_gru, [cell per direction], go_backwards)
    for k, item in enumerate(layers):
        where = "layer" if len(layers) == 1 else f"layer[{k}]"
        if isinstance(item, keras.layers.Bidirectional):
            if item.merge_mode != "concat":
                raise ArgumentError(
                    f"{where}.merge_mode: lstm_jax concatenates the two directions; expected 'concat', "
                    f"found {item.merge_mode!r}"
                )
            fwd, bwd = item.forward_layer, item.backward_layer
            is_gru, fwd_cell = _check_cell(keras, f"{where}.forward_layer", fwd)
            bwd_gru, bwd_cell = _check_cell(keras, f"{where}.backward_layer", bwd)
            if fwd.go_backwards or bwd_gru != is_gru or bwd_cell.units != fwd_cell.units:
                raise ArgumentError(
                    f"{where}.backward_layer: expected the forward layer's type and units running backwards, "
                    f"found {type(bwd).__name__}({bwd_cell.units}, go_backwards={bwd.go_backwards}) after "
                    f"{type(fwd).__name__}({fwd_cell.units}, go_backwards={fwd.go_backwards})"
                )
            plans.append((where, is_gru, [fwd_cell, bwd_cell], False))
        else:
            is_gru, cell = _check_cell(keras, where, item)
            plans.append((where, is_gru, [cell], bool(item.go_backwards)))

    _, is_gru, cells0, backwards = plans[0]
    first = cells0[0]
    bidirectional = len(cells0) == 2
    for where, gru_k, cells, _ in plans[1:]:
        found = (gru_k, cells[0].units, len(cells) == 2, cells[0].use_bias, cells[0].recurrent_dropout)
        wanted = (is_gru, first.units, bidirectional, first.use_bias, first.recurrent_dropout)
        if found != wanted:
            fields = "(is GRU, units, bidirectional, use_bias, recurrent_dropout)"
            raise ArgumentError(f"{where}: a stack shares {fields}; expected {wanted} as layer[0], found {found}")
    if len(plans) > 1 and any(p[3] for p in plans):
        where = next(p[0] for p in plans if p[3])
        raise ArgumentError(
            f"{where}.go_backwards: a stacked go_backwards layer feeds its reversed outputs on; expected False"
        )
    for where, _, cells, _ in plans:
        if any(c.use_bias != first.use_bias or c.recurrent_dropout != first.recurrent_dropout for c in cells):
            raise ArgumentError(f"{where}: both directions must share use_bias and recurrent_dropout; they differ")
    dropped = sorted({p[0] for p in plans for c in p[2] if c.dropout})
    if dropped:
        log.info("from_keras: input dropout of %s has no lstm_jax equivalent and is left out (training only)", dropped)

    hidden = first.units
    params = {}
    in_features = None
    for k, (where, _, cells, _) in enumerate(plans):
        for direction, cell in enumerate(cells):
            w = _weights(keras, is_gru, cell, hidden)
            features = w["kernel_ih"].shape[0]
            if in_features is not None and features != in_features:
                raise ArgumentError(
                    f"{where}: expected {in_features} input features (the previous layer's output), found {features}"
                )
            params[f"layer_{k}" + ("_reverse" if direction else "")] = w
        in_features = hidden * len(cells)

    from lstm_jax.nn._gru import GRU

    module = (GRU if is_gru else LSTM)(
        hidden_size=hidden,
        num_layers=len(plans),
        bidirectional=bidirectional,
        use_bias=bool(first.use_bias),
        reverse=backwards,
        recurrent_dropout=float(first.recurrent_dropout),
        unroll=unroll,
    )
    return module, {"params": params}


def to_keras(module, variables, *, return_state: bool = True):
    """A built Keras 3 layer with the weights of `variables` (float32), computing what
    `module.apply(variables, x)` computes for x float32[B, T, F].

    num_layers == 1: a `keras.layers.LSTM` or `keras.layers.GRU` (reset_after=True), or a
    `keras.layers.Bidirectional` of one (merge_mode="concat") when bidirectional. With
    num_layers > 1: a list of such layers, one per layer, to apply in turn (each reads the
    previous one's sequence output; `from_keras` takes the list back). Every layer has
    return_sequences=True and zero_output_for_mask=True (zeros at masked steps, like ours), and
    with `return_state` (default) returns [outputs, h, c] (LSTM) or [outputs, h] (GRU), forward
    states before backward ones for Bidirectional. reverse=True becomes go_backwards=True, whose
    Keras outputs run in reversed time order (`keras_outputs[:, ::-1]` is ours).

    recurrent_dropout is carried over (see `from_keras`). Left out with a log message, as they
    act in training only: dropout between layers and weight_drop. Refused with an
    ArgumentError, as Keras' LSTM/GRU layers cannot compute them: proj_size, layer_norm,
    learn_initial_state, zoneout (which mixes the previous state in at evaluation too), and
    reverse with num_layers > 1 (stacked go_backwards layers reverse every other layer's input).
    A mixed-precision `dtype` is not carried over: the Keras layer computes in float32.
    """
    import keras

    from lstm_jax.nn._gru import GRU

    is_gru = isinstance(module, GRU)
    if not is_gru and not isinstance(module, LSTM):
        raise ArgumentError(f"module: expected an lstm_jax LSTM or GRU, found {type(module).__name__}")
    name = type(module).__name__
    if module.proj_size:
        raise ArgumentError(f"{name}.proj_size: Keras' LSTM has no projection; expected 0, found {module.proj_size}")
    for field in ("learn_initial_state", "layer_norm"):
        if getattr(module, field):
            raise ArgumentError(f"{name}.{field}: Keras' recurrent layers have no equivalent; expected False")
    if any(module._zoneout_rates()):
        raise ArgumentError(f"{name}.zoneout: Keras' recurrent layers have no equivalent; expected 0")
    dropped = [f for f in ("weight_drop",) + (("dropout",) if module.num_layers > 1 else ()) if getattr(module, f)]
    if dropped:
        log.info("to_keras: %s have no Keras layer equivalent and are left out (they act in training only)", dropped)
    if module.reverse and module.num_layers > 1:
        # Keras' go_backwards layers emit reversed sequences, so the next one would run forwards
        # over the previous layer's outputs, where ours runs every layer backwards.
        raise ArgumentError(
            f"{name}.reverse: stacked go_backwards Keras layers differ from a reversed stack; "
            f"expected num_layers 1 with reverse=True, found {module.num_layers}"
        )
    if module.dtype is not None:
        log.info("to_keras: compute dtype %s is not carried over; the Keras layer computes in float32", module.dtype)
    params = variables["params"] if "params" in variables else variables
    missing = [f"layer_{k}" for k in range(module.num_layers) if f"layer_{k}" not in params]
    if missing:
        raise ArgumentError(f"variables: expected {name} params with {missing[0]!r}, found keys {sorted(params)}")

    hidden = module.hidden_size
    layers = []
    for k in range(module.num_layers):
        directions = [params[f"layer_{k}"]] + ([params[f"layer_{k}_reverse"]] if module.bidirectional else [])
        config = dict(
            units=hidden,
            use_bias=module.use_bias,
            recurrent_dropout=float(module.recurrent_dropout),
            go_backwards=bool(module.reverse),
            return_sequences=True,
            return_state=return_state,
            zero_output_for_mask=True,
        )
        rnn = keras.layers.GRU(reset_after=True, **config) if is_gru else keras.layers.LSTM(**config)
        layer = keras.layers.Bidirectional(rnn, merge_mode="concat") if module.bidirectional else rnn
        features = int(np.shape(directions[0]["kernel_ih"])[0])
        layer.build((None, None, features))
        subs = [layer.forward_layer, layer.backward_layer] if module.bidirectional else [layer]
        for sub, w in zip(subs, directions):
            sub.set_weights(_keras_weights(is_gru, w, module.use_bias, hidden))
        layers.append(layer)
    return layers[0] if module.num_layers == 1 else layers


def _keras_weights(is_gru: bool, w: dict, use_bias: bool, hidden: int) -> list[np.ndarray]:
    """Keras' [kernel, recurrent_kernel(, bias)] of one layer and direction from ours."""

    def f32(a):
        return np.asarray(a, dtype=np.float32)

    if not is_gru:
        return [f32(w["kernel_ih"]), f32(w["kernel_hh"])] + ([f32(w["bias"])] if use_bias else [])
    out = [_swap_rz(w["kernel_ih"], hidden), _swap_rz(w["kernel_hh"], hidden)]
    if use_bias:
        out.append(np.stack([_swap_rz(w["bias_ih"], hidden), _swap_rz(w["bias_hh"], hidden)]))
    return out
