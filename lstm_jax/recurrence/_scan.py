"""The LSTM recurrence: gate math, one `lax.scan` over time, masks, resets and explicit state.

Gate order is i, f, g, o (PyTorch's). With z = x W_ih + h W_hh + b split into four:

    i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)
    c' = f * c + i * g
    h' = o * tanh(c')

Everything here is a pure function of arrays; the Flax module in `layers.py` owns the weights.
Inside, the recurrence is time-major (`[T, B, ...]`) so that `lax.scan` slices the leading axis.

Mixed precision (`dtype` not None, e.g. bfloat16): the operands of every matmul (x, h and the
kernels, cast inside the loop) are in `dtype`, products are accumulated in float32
(`preferred_element_type`), the gate math and the cell state c are float32, h is stored in
`dtype`, and the gradients of the float32 kernels are accumulated in float32.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.errors import ArgumentError
from lstm_jax.recurrence import _native as native
from lstm_jax.recurrence._fused import fused_lstm, matmul


class LSTMState(NamedTuple):
    """State of one LSTM layer in one direction."""

    c: jax.Array  # float32[B, H]
    h: jax.Array  # float32[B, H], or float32[B, P] with a projection (the compute dtype if mixed)


def zeros_state(batch_size: int, hidden_size: int, proj_size: int = 0, dtype=jnp.float32, c_dtype=None) -> LSTMState:
    """A zero state: c float32[batch_size, hidden_size], h float32[batch_size, proj_size or hidden_size].
    `dtype` is h's dtype, and c's too unless `c_dtype` is given (mixed precision keeps c in float32)."""
    return LSTMState(
        c=jnp.zeros((batch_size, hidden_size), c_dtype or dtype),
        h=jnp.zeros((batch_size, proj_size or hidden_size), dtype),
    )


def reset_state(state, reset_mask: jax.Array):
    """Zero the rows of `state` selected by `reset_mask` (bool[B]); other rows are untouched.

    `state` is any pytree whose leaves have the batch as their leading axis (one `LSTMState`,
    or a tuple of them for stacked layers).
    """
    keep = jnp.logical_not(jnp.asarray(reset_mask, bool))

    def _reset(leaf):
        k = keep.reshape(keep.shape + (1,) * (leaf.ndim - 1))
        return jnp.where(k, leaf, jnp.zeros_like(leaf))

    return jax.tree.map(_reset, state)


def cell(z: jax.Array, c: jax.Array) -> LSTMState:
    """Apply the gate equations to pre-activations z float32[B, 4H] and cell c float32[B, H]."""
    z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=-1)
    c_new = jax.nn.sigmoid(z_f) * c + jax.nn.sigmoid(z_i) * jnp.tanh(z_g)
    h_new = jax.nn.sigmoid(z_o) * jnp.tanh(c_new)
    return LSTMState(c=c_new, h=h_new)


def layer_norm(v: jax.Array, scale: jax.Array, bias: jax.Array, eps: float = 1e-5) -> jax.Array:
    """(v - mean) / sqrt(var + eps) * scale + bias over the last axis, in float32 (Ba et al. 2016)."""
    v = v.astype(jnp.float32)
    mean = jnp.mean(v, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(v - mean), axis=-1, keepdims=True)
    return (v - mean) * jax.lax.rsqrt(var + eps) * scale + bias


def ln_cell(z: jax.Array, c: jax.Array, scale_c: jax.Array, bias_c: jax.Array) -> LSTMState:
    """The layer-normalised cell of Ba, Kiros & Hinton 2016 (sec. 3.1): h' = o * tanh(LN(c'))."""
    z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=-1)
    c_new = jax.nn.sigmoid(z_f) * c + jax.nn.sigmoid(z_i) * jnp.tanh(z_g)
    return LSTMState(c=c_new, h=jax.nn.sigmoid(z_o) * jnp.tanh(layer_norm(c_new, scale_c, bias_c)))


def lengths_to_mask(lengths: jax.Array, max_length: int) -> jax.Array:
    """bool[B, T] that is True at the first `lengths[b]` steps of row b (right padding)."""
    return jnp.arange(max_length)[None, :] < jnp.asarray(lengths)[:, None]


def resolve_mask(batch: int, time: int, lengths=None, mask=None) -> jax.Array | None:
    """The step mask bool[B, T] from either `lengths` int[B] or `mask` bool[B, T] (not both)."""
    if lengths is not None and mask is not None:
        raise ArgumentError("give either lengths or mask, not both")
    if lengths is not None:
        if jnp.shape(lengths) != (batch,):
            raise ArgumentError(f"lengths: expected shape {(batch,)}, found {jnp.shape(lengths)}")
        return lengths_to_mask(lengths, time)
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        if mask.shape != (batch, time):
            raise ArgumentError(f"mask: expected shape {(batch, time)}, found {mask.shape}")
    return mask


def scan_order_reset(reset: jax.Array | None, reverse: bool) -> jax.Array | None:
    """Resets bool[T, B] ("a new segment starts at step t") in the order a scan consumes them:
    the state is zeroed before step t going forward, and before step t - 1 (after step t)
    going in reverse, so each segment of a bidirectional layer sees only itself."""
    if reset is None or not reverse:
        return reset
    return jnp.concatenate([reset[1:], jnp.zeros_like(reset[:1])], 0)


def _zone(previous, new, keep_previous):
    """Zoneout: bool mask -> previous where True; a float rate (evaluation) -> the expectation."""
    if keep_previous is None:
        return new
    if keep_previous.dtype == jnp.bool_:
        return jnp.where(keep_previous, previous, new)
    return (keep_previous * previous + (1.0 - keep_previous) * new).astype(new.dtype)


def lstm_scan(
    x_proj: jax.Array,
    kernel_hh: jax.Array,
    state: LSTMState,
    mask: jax.Array | None = None,
    *,
    kernel_proj: jax.Array | None = None,
    h_keep: jax.Array | None = None,
    reset: jax.Array | None = None,
    zoneout: tuple | None = None,
    norm: dict | None = None,
    dtype=None,
    reverse: bool = False,
    unroll: int = 1,
) -> tuple[LSTMState, jax.Array]:
    """Run the recurrence over time.

    Args:
      x_proj: float32[T, B, 4H], the input projection x W_ih + b for every step, computed
        outside the loop as one large matmul.
      kernel_hh: float32[P, 4H], the recurrent kernel (P = H without projection).
      state: initial `LSTMState` with c float32[B, H] and h float32[B, P].
      mask: optional bool[T, B]. Where False the state passes through unchanged and the
        output is zero, so padded steps (left, right or in the middle) never change state.
      kernel_proj: optional float32[H, P], the output projection of an LSTM with projection
        (Sak et al. 2014, PyTorch's `proj_size`): h = (o * tanh(c)) W_hr.
      h_keep: optional float32[B, P] multiplied into h before the recurrent matmul: recurrent
        (variational) dropout with one mask for every step of a sequence (Gal & Ghahramani 2016).
      reset: optional bool[T, B] in scan order: where True the state is zeroed before the step.
      zoneout: optional (keep_c, keep_h): each bool[T, B, H or P] (training: where True the unit
        keeps its previous value) or a float scalar (evaluation: the rate, mixing in expectation);
        Krueger et al. 2016.
      norm: optional layer-norm parameters {"hh_scale", "hh_bias": float32[4H], "c_scale",
        "c_bias": float32[H]}: LN of h W_hh and of c before the output tanh (Ba et al. 2016);
        the LN of x W_ih is part of x_proj.
      dtype: None, or the compute dtype of mixed precision (see the module docstring).
      reverse: scan from the last step to the first; outputs stay in input order.
      unroll: steps per loop iteration, passed to `lax.scan`.

    Returns:
      (final_state, outputs float32[T, B, P]).
    """
    zone_c, zone_h = (None, None) if zoneout is None else zoneout
    per_step = [z if z is not None and jnp.ndim(z) == 3 else None for z in (zone_c, zone_h)]
    constant = [jnp.asarray(z) if z is not None and jnp.ndim(z) != 3 else None for z in (zone_c, zone_h)]

    def step(carry: LSTMState, inputs):
        xz, m, r, zc, zh = inputs
        if r is not None:
            carry = reset_state(carry, r)
        h_in = carry.h if h_keep is None else carry.h * h_keep
        rec = matmul(h_in, kernel_hh, dtype)
        if norm is None:
            new = cell(xz + rec, carry.c)
        else:
            new = ln_cell(
                xz + layer_norm(rec, norm["hh_scale"], norm["hh_bias"]), carry.c, norm["c_scale"], norm["c_bias"]
            )
        if kernel_proj is not None:
            new = LSTMState(c=new.c, h=matmul(new.h if dtype is None else new.h.astype(dtype), kernel_proj, dtype))
        if dtype is not None:
            new = LSTMState(c=new.c, h=new.h.astype(dtype))
        if zoneout is not None:
            zc = constant[0] if zc is None else zc
            zh = constant[1] if zh is None else zh
            new = LSTMState(c=_zone(carry.c, new.c, zc), h=_zone(carry.h, new.h, zh))
        if m is None:
            return new, new.h
        keep = m[:, None]
        new = LSTMState(c=jnp.where(keep, new.c, carry.c), h=jnp.where(keep, new.h, carry.h))
        return new, jnp.where(keep, new.h, jnp.zeros_like(new.h))

    xs = (x_proj, mask, reset, per_step[0], per_step[1])
    return jax.lax.scan(step, state, xs, reverse=reverse, unroll=unroll)


IMPLEMENTATIONS = ("fused", "scan", "native")


def check_implementation(implementation: str, batch_groups: int, batch: int, known=IMPLEMENTATIONS) -> None:
    """One-line ArgumentError unless `implementation` is one of `known` and `batch_groups` divides
    the batch (shared by the LSTM and GRU recurrences)."""
    if implementation not in known:
        raise ArgumentError(f"implementation: expected one of {known}, found {implementation!r}")
    if batch_groups < 1 or batch % batch_groups:
        raise ArgumentError(f"batch_groups: expected a divisor of the batch size {batch}, found {batch_groups}")


def recurrence(
    x: jax.Array,
    kernel_ih: jax.Array,
    kernel_hh: jax.Array,
    bias: jax.Array | None,
    state: LSTMState,
    mask: jax.Array | None = None,
    *,
    kernel_proj: jax.Array | None = None,
    h_keep: jax.Array | None = None,
    reset: jax.Array | None = None,
    zoneout: tuple | None = None,
    norm: dict | None = None,
    dtype=None,
    reverse: bool = False,
    unroll: int = 1,
    implementation: str = "fused",
    batch_groups: int = 1,
) -> tuple[LSTMState, jax.Array]:
    """One layer, one direction, over time-major inputs x float[T, B, F].

    kernel_ih float[F, 4H], kernel_hh float[P, 4H], bias float[4H] or None; reset bool[T, B]
    (True at step t: a new segment starts at t, the state is zeroed before it; in reverse, after
    it); norm may also hold "ih_scale", "ih_bias" float32[4H] for the LN of x W_ih; the other
    arguments and the result as in `lstm_scan`. "fused" (`fused.fused_lstm`: one [x_t, h]
    matmul per step, hand-written backward pass) serves every layer without a projection or
    layer norm, zoneout included (training masks and evaluation rates; Krueger et al. 2016).
    Layer norm stays on "scan": it normalises x W_ih and h W_hh separately, so they must be two
    products, which defeats the fused path's single stacked [x_t, h] @ [W_ih; W_hh] matmul (and
    its backward would need the normalisation statistics of every step); a projection likewise
    adds a second matmul and a second state size to the step. "scan" hoists the input
    projection for all steps out of the loop as one matmul and runs `lstm_scan` under plain
    autodiff (which, unlike a custom VJP, also supports forward-mode derivatives).
    `batch_groups` applies to "fused" only. "native" (`native.native_lstm`: the whole loop in
    C++ with its own GEMM, float32/float64) serves the same layers as "fused" except with zoneout or
    mixed precision (an ArgumentError names them); where its compiled kernels cannot load it warns
    once and runs "fused".

    Inputs at masked steps are replaced by zeros first, so that no value there (NaN or inf
    included) reaches an output or a gradient. A sequence of length 0 returns `state` and
    outputs of shape [0, B, P] on both paths.
    """
    check_implementation(implementation, batch_groups, x.shape[1])
    steps, batch = x.shape[0], x.shape[1]
    if steps == 0:
        return state, jnp.zeros((0, batch, state.h.shape[-1]), state.h.dtype)
    if mask is not None:
        x = jnp.where(mask[..., None], x, jnp.zeros_like(x))
    reset = scan_order_reset(reset, reverse)
    if implementation == "scan" or kernel_proj is not None or norm is not None:
        if dtype is None:
            x_proj = jnp.einsum("tbf,fg->tbg", x, kernel_ih)  # all steps in one matmul
        else:
            x_proj = jnp.einsum(
                "tbf,fg->tbg", x, kernel_ih.astype(dtype), preferred_element_type=jnp.promote_types(dtype, jnp.float32)
            )
        if norm is not None:
            x_proj = layer_norm(x_proj, norm["ih_scale"], norm["ih_bias"])
        if bias is not None:
            x_proj = x_proj + bias
        return lstm_scan(
            x_proj,
            kernel_hh,
            state,
            mask,
            kernel_proj=kernel_proj,
            h_keep=h_keep,
            reset=reset,
            zoneout=zoneout,
            norm=norm,
            dtype=dtype,
            reverse=reverse,
            unroll=unroll,
        )
    bias = jnp.zeros(kernel_hh.shape[-1], kernel_hh.dtype) if bias is None else bias
    if implementation == "native":
        for name, value in (("zoneout", zoneout), ("dtype", dtype)):
            if value is not None:
                raise ArgumentError(f'{name}: expected None with implementation="native", found {value!r}; use "fused"')
        if native.available():
            (c, h), out = native.native_lstm(
                x, kernel_ih, kernel_hh, bias, state.c, state.h, mask, h_keep, reverse, reset
            )
            return LSTMState(c=c, h=h), out
        native.warn_unavailable()
    (c, h), out = fused_lstm(
        x,
        kernel_ih,
        kernel_hh,
        bias,
        state.c,
        state.h,
        mask,
        h_keep,
        reverse,
        batch_groups,
        unroll,
        reset,
        dtype,
        zoneout,
    )
    return LSTMState(c=c, h=h), out
