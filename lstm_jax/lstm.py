"""The LSTM recurrence: gate math, one `lax.scan` over time, masks and explicit state.

Gate order is i, f, g, o (PyTorch's). With z = x W_ih + h W_hh + b split into four:

    i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)
    c' = f * c + i * g
    h' = o * tanh(c')

Everything here is a pure function of arrays; the Flax module in `layers.py` owns the weights.
Inside, the recurrence is time-major (`[T, B, ...]`) so that `lax.scan` slices the leading axis.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.errors import ArgumentError
from lstm_jax.fused import fused_lstm


class LSTMState(NamedTuple):
    """State of one LSTM layer in one direction."""

    c: jax.Array  # float32[B, H]
    h: jax.Array  # float32[B, H], or float32[B, P] with a projection


def zeros_state(batch_size: int, hidden_size: int, proj_size: int = 0, dtype=jnp.float32) -> LSTMState:
    """A zero state: c float32[batch_size, hidden_size], h float32[batch_size, proj_size or hidden_size]."""
    return LSTMState(
        c=jnp.zeros((batch_size, hidden_size), dtype), h=jnp.zeros((batch_size, proj_size or hidden_size), dtype)
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


def lstm_scan(
    x_proj: jax.Array,
    kernel_hh: jax.Array,
    state: LSTMState,
    mask: jax.Array | None = None,
    *,
    kernel_proj: jax.Array | None = None,
    h_keep: jax.Array | None = None,
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
      reverse: scan from the last step to the first; outputs stay in input order.
      unroll: steps per loop iteration, passed to `lax.scan`.

    Returns:
      (final_state, outputs float32[T, B, P]).
    """

    def step(carry: LSTMState, inputs):
        xz, m = inputs
        h_in = carry.h if h_keep is None else carry.h * h_keep
        new = cell(xz + h_in @ kernel_hh, carry.c)
        if kernel_proj is not None:
            new = LSTMState(c=new.c, h=new.h @ kernel_proj)
        if m is None:
            return new, new.h
        keep = m[:, None]
        new = LSTMState(c=jnp.where(keep, new.c, carry.c), h=jnp.where(keep, new.h, carry.h))
        return new, jnp.where(keep, new.h, jnp.zeros_like(new.h))

    return jax.lax.scan(step, state, (x_proj, mask), reverse=reverse, unroll=unroll)


IMPLEMENTATIONS = ("fused", "scan")


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
    reverse: bool = False,
    unroll: int = 1,
    implementation: str = "fused",
    batch_groups: int = 1,
) -> tuple[LSTMState, jax.Array]:
    """One layer, one direction, over time-major inputs x float[T, B, F].

    kernel_ih float[F, 4H], kernel_hh float[P, 4H], bias float[4H] or None; the other arguments
    and the result as in `lstm_scan`. "fused" (`fused.fused_lstm`: one [x_t, h] matmul per step,
    hand-written backward pass) serves every layer without a projection; "scan" hoists the
    input projection for all steps out of the loop as one matmul and runs `lstm_scan` under
    plain autodiff (which, unlike a custom VJP, also supports forward-mode derivatives).
    `batch_groups` applies to "fused" only.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ArgumentError(f"implementation: expected one of {IMPLEMENTATIONS}, found {implementation!r}")
    batch = x.shape[1]
    if batch_groups < 1 or batch % batch_groups:
        raise ArgumentError(f"batch_groups: expected a divisor of the batch size {batch}, found {batch_groups}")
    if implementation == "scan" or kernel_proj is not None:
        x_proj = jnp.einsum("tbf,fg->tbg", x, kernel_ih)  # all steps in one matmul
        if bias is not None:
            x_proj = x_proj + bias
        return lstm_scan(
            x_proj, kernel_hh, state, mask, kernel_proj=kernel_proj, h_keep=h_keep, reverse=reverse, unroll=unroll
        )
    bias = jnp.zeros(kernel_hh.shape[-1], x.dtype) if bias is None else bias
    (c, h), out = fused_lstm(
        x, kernel_ih, kernel_hh, bias, state.c, state.h, mask, h_keep, reverse, batch_groups, unroll
    )
    return LSTMState(c=c, h=h), out
