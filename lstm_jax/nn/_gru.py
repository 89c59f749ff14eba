"""The GRU: torch's gate conventions, on the same module and API as the LSTM.

Gate order r, z, n (PyTorch's). With x W_ih + b_ih and h W_hh + b_hh each split into three:

    r = sigmoid(x_r + h_r)   z = sigmoid(x_z + h_z)   n = tanh(x_n + r * h_n)
    h' = (1 - z) * n + z * h

(Cho et al. 2014, with b_hn inside the reset product as in cuDNN and torch.nn.GRU.) The
recurrence is pure functions of arrays, like `lstm.py`; `GRU` is `layers.LSTM` with GRU weights
and state, so it takes the same fields and call arguments (masks, resets, state, bidirectional,
dropout, recurrent dropout, weight drop, zoneout on h, mixed precision, batch groups).

`implementation="fused"` (the default) runs `fused_gru.fused_gru`, a scan with a hand-written
backward pass, for every layer without zoneout; "scan" (and zoneout) runs `gru_scan` under plain
autodiff, which, unlike a custom VJP, also supports forward-mode derivatives. Both hoist the input
projection x W_ih + b_ih for all steps out of the loop as one matmul.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from lstm_jax.errors import ArgumentError
from lstm_jax.recurrence._fused import matmul
from lstm_jax.recurrence._fused_gru import fused_gru
from lstm_jax.nn._initializers import orthogonal
from lstm_jax.nn._layers import LSTM, at_least_float32
from lstm_jax.recurrence._scan import _zone, check_implementation, reset_state, scan_order_reset

GRU_IMPLEMENTATIONS = ("fused", "scan")  # "native" is the LSTM's only


class GRUState(NamedTuple):
    """State of one GRU layer in one direction."""

    h: jax.Array  # float32[B, H] (the compute dtype under mixed precision)


def gru_scan(
    x_proj,
    kernel_hh,
    bias_hh,
    state: GRUState,
    mask=None,
    *,
    h_keep=None,
    reset=None,
    zoneout_h=None,
    dtype=None,
    reverse=False,
    unroll=1,
):
    """Run the GRU over time.

    x_proj float32[T, B, 3H] (x W_ih + b_ih for every step), kernel_hh float32[H, 3H], bias_hh
    float32[3H] or None, state h float32[B, H]; mask bool[T, B] (masked steps keep the state and
    output zeros), h_keep float[B, H] (recurrent dropout on h before the matmul), reset bool[T, B]
    in scan order, zoneout_h bool[T, B, H] or a float rate (see `lstm.lstm_scan`), dtype the
    mixed-precision compute dtype or None. Returns (final GRUState, outputs float32[T, B, H]).
    """
    per_step = zoneout_h if zoneout_h is not None and jnp.ndim(zoneout_h) == 3 else None
    constant = jnp.asarray(zoneout_h) if zoneout_h is not None and per_step is None else None

    def step(carry: GRUState, inputs):
        xp, m, r, zh = inputs
        if r is not None:
            carry = reset_state(carry, r)
        h = carry.h
        hp = matmul(h if h_keep is None else h * h_keep, kernel_hh, dtype)
        if bias_hh is not None:
            hp = hp + bias_hh
        x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(hp, 3, axis=-1)
        reset_gate, update = jax.nn.sigmoid(x_r + h_r), jax.nn.sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + reset_gate * h_n)
        h_new = ((1.0 - update) * n + update * h.astype(n.dtype)).astype(h.dtype)
        if zoneout_h is not None:
            h_new = _zone(h, h_new, constant if zh is None else zh)
        if m is None:
            return GRUState(h_new), h_new
        keep = m[:, None]
        h_new = jnp.where(keep, h_new, h)
        return GRUState(h_new), jnp.where(keep, h_new, jnp.zeros_like(h_new))

    return jax.lax.scan(step, state, (x_proj, mask, reset, per_step), reverse=reverse, unroll=unroll)


def gru_recurrence(
    x,
    kernel_ih,
    kernel_hh,
    bias_ih,
    bias_hh,
    state: GRUState,
    mask=None,
    *,
    h_keep=None,
    reset=None,
    zoneout_h=None,
    dtype=None,
    reverse=False,
    unroll=1,
    implementation="fused",
    batch_groups=1,
):
    """One GRU layer, one direction, over time-major x float[T, B, F]; kernel_ih float[F, 3H],
    reset bool[T, B] (a new segment starts at step t); otherwise as `gru_scan`. "fused" runs
    `fused_gru` (`batch_groups` row blocks per step) unless zoneout is on; "scan" runs `gru_scan`.
    Masked inputs are zeroed first; a sequence of length 0 returns `state` and outputs [0, B, H]."""
    check_implementation(implementation, batch_groups, x.shape[1], known=GRU_IMPLEMENTATIONS)
    steps, batch = x.shape[:2]
    if steps == 0:
        return state, jnp.zeros((0, batch, state.h.shape[-1]), state.h.dtype)
    if mask is not None:
        x = jnp.where(mask[..., None], x, jnp.zeros_like(x))
    if dtype is None:
        x_proj = jnp.einsum("tbf,fg->tbg", x, kernel_ih)
    else:
        x_proj = jnp.einsum(
            "tbf,fg->tbg", x, kernel_ih.astype(dtype), preferred_element_type=jnp.promote_types(dtype, jnp.float32)
        )
    if bias_ih is not None:
        x_proj = x_proj + bias_ih
    reset = scan_order_reset(reset, reverse)
    if implementation == "fused" and zoneout_h is None:
        bias_hh = jnp.zeros(kernel_hh.shape[-1], kernel_hh.dtype) if bias_hh is None else bias_hh
        h, out = fused_gru(
            x_proj, kernel_hh, bias_hh, state.h, mask, h_keep, reverse, batch_groups, unroll, reset, dtype
        )
        return GRUState(h), out
    return gru_scan(
        x_proj,
        kernel_hh,
        bias_hh,
        state,
        mask,
        h_keep=h_keep,
        reset=reset,
        zoneout_h=zoneout_h,
        dtype=dtype,
        reverse=reverse,
        unroll=unroll,
    )


class GRULayerWeights(nn.Module):
    """kernel_ih float32[F, 3H] (Glorot uniform), kernel_hh float32[H, 3H] (orthogonal), and with
    use_bias bias_ih, bias_hh float32[3H] (zeros); torch's layout transposed."""

    hidden_size: int
    use_bias: bool = True
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, in_features: int):
        g, dt = 3 * self.hidden_size, self.param_dtype
        w = {
            "kernel_ih": self.param(
                "kernel_ih", at_least_float32(nn.initializers.glorot_uniform()), (in_features, g), dt
            ),
            "kernel_hh": self.param("kernel_hh", at_least_float32(orthogonal()), (self.hidden_size, g), dt),
            "bias_ih": None,
            "bias_hh": None,
        }
        if self.use_bias:
            w["bias_ih"] = self.param("bias_ih", nn.initializers.zeros, (g,), dt)
            w["bias_hh"] = self.param("bias_hh", nn.initializers.zeros, (g,), dt)
        return w


class GRU(LSTM):
    """A stacked GRU over batch-major sequences, with the LSTM's fields and call (see `LSTM`).

    Call: `outputs, state = gru(x, initial_state=None, *, lengths=None, mask=None, reset=None,
    deterministic=True)` with x float32[B, T, F]; outputs float32[B, T, D * H]; the state is a
    tuple of `num_layers * D` `GRUState`s with h float32[B, H] (torch's h_n order).
    Not available: proj_size and layer_norm; zoneout applies to h (the rate for h of a pair) and
    runs the scan path; `implementation` and `batch_groups` as for the LSTM.
    """

    def _validate(self, x) -> None:
        if self.proj_size:
            raise ArgumentError(f"proj_size: a GRU has no projection; expected 0, found {self.proj_size}")
        if self.layer_norm:
            raise ArgumentError("layer_norm: not available on the GRU; expected False")
        super()._validate(x)

    def _state_dtypes(self, compute, c_dtype):
        return (compute,)

    def initial_state(self, batch_size: int, dtype=None) -> tuple[GRUState, ...]:
        """Zeros for every layer and direction: `num_layers * D` `GRUState`s."""
        compute, _, _ = self._dtypes(dtype)
        n = self.num_layers * self.num_directions
        return tuple(GRUState(jnp.zeros((batch_size, self.hidden_size), compute)) for _ in range(n))

    def _learned_initial_state(self, batch_size: int) -> tuple[GRUState, ...]:
        n = self.num_layers * self.num_directions
        h0 = self.param("initial_h", nn.initializers.zeros, (n, self.hidden_size), self.param_dtype)
        return tuple(GRUState(jnp.broadcast_to(h0[k], (batch_size, self.hidden_size))) for k in range(n))

    def _direction(self, name, seq, state, mask_tm, reset_tm, reverse, deterministic, mixed):
        w = GRULayerWeights(self.hidden_size, self.use_bias, self.param_dtype, name=name)(seq.shape[-1])
        steps, batch = seq.shape[:2]
        shape = (steps, batch, self.hidden_size)
        zone = self._zoneout(shape, shape, deterministic)
        return gru_recurrence(
            seq,
            w["kernel_ih"],
            self._weight_dropped(w["kernel_hh"], deterministic),
            w["bias_ih"],
            w["bias_hh"],
            state,
            mask_tm,
            h_keep=self._recurrent_keep(batch, deterministic, mixed),
            reset=reset_tm,
            zoneout_h=None if zone is None else zone[1],
            dtype=mixed,
            reverse=reverse,
            unroll=self.unroll,
            implementation=self.implementation,
            batch_groups=self.batch_groups,
        )
