"""The fast path of the recurrence: a scan with a hand-written backward pass (custom VJP).

Autodiff of `lstm.lstm_scan` saves every intermediate of every step and carries more than the
state through its backward loop. Here instead:

- forward: one scan that stores only what the backward needs per step: the four gate
  activations a = [i, f, g, o] and the cell state before the step;
- backward: one reverse scan whose carry is (dh, dc) and the running dW_hh; each step does the
  gate derivatives, one [B, 4H] x [4H, H] matmul for dh, and adds h_{t-1}^T dz_t to dW_hh;
  dL/dx_proj is the stacked dz. cuDNN instead computes dW_hh after the loop as one
  [H, T*B] x [T*B, 4H] matmul (`WEIGHT_GRAD_AFTER_LOOP = True`); on the CPU this project runs
  on, XLA's kernel for that transposed product was slower than T small ones (BENCHMARKS.md).

Sigmoid is written as 0.5 * tanh(0.5 x) + 0.5, so all four gates are one tanh over [B, 4H]
(XLA's CPU tanh is a fast rational approximation; its logistic is exp + divide).

`groups` splits the batch into independent row groups whose recurrences are separate ops in
the loop body, so XLA's CPU runtime runs them concurrently (one per core) instead of
synchronising all cores inside every small matmul.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

WEIGHT_GRAD_AFTER_LOOP = False  # read at trace time; the benchmark measures both


def _gate_constants(hidden: int, dtype):
    """scale, offset float[4H]: a = tanh(z * scale) * scale + offset gives [sig, sig, tanh, sig]."""
    half, one, zero = (jnp.full((hidden,), v, dtype) for v in (0.5, 1.0, 0.0))
    return jnp.concatenate([half, half, one, half]), jnp.concatenate([half, half, zero, half])


def _grouped(x, groups: int):
    """Time-major float[T, B, ...] -> [T, groups, B / groups, ...] (a free reshape); None stays None."""
    return None if x is None else x.reshape(x.shape[0], groups, x.shape[1] // groups, *x.shape[2:])


def _rows(x, groups: int):
    """Batch-major [B, ...] -> list of `groups` row blocks; None -> list of None."""
    if x is None:
        return [None] * groups
    return list(x.reshape(groups, x.shape[0] // groups, *x.shape[1:]))


def _join(blocks):
    """Per-group time-major blocks [T, B / groups, ...] -> [T, B, ...]."""
    return blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks, axis=1)


def _previous(seq, first, reverse: bool):
    """The value before each step in scan order: seq shifted by one step, `first` at the start."""
    if reverse:
        return jnp.concatenate([seq[1:], first[None]], 0)
    return jnp.concatenate([first[None], seq[:-1]], 0)


def _forward(x_proj, kernel_hh, c0, h0, mask, h_keep, reverse, groups, unroll):
    """Forward scan. Returns ((c_T, h_T), per-group tuples (out, h_state, c_prev, gates)),
    each block time-major [T, B / groups, ...]; h_state is None without a mask (it equals out)."""
    scale, offset = _gate_constants(c0.shape[-1], x_proj.dtype)
    keeps = _rows(h_keep, groups)

    def one_group(xz, m, c, h, keep):
        h_in = h if keep is None else h * keep
        a = jnp.tanh((xz + h_in @ kernel_hh) * scale) * scale + offset
        i, f, g, o = jnp.split(a, 4, axis=-1)
        c_new = f * c + i * g
        h_new = o * jnp.tanh(c_new)
        if m is None:
            return (c_new, h_new), (h_new, None, c, a)
        keep_row = m[:, None]
        c_next, h_next = jnp.where(keep_row, c_new, c), jnp.where(keep_row, h_new, h)
        return (c_next, h_next), (jnp.where(keep_row, h_new, 0.0), h_next, c, a)

    def step(carry, inputs):
        xz, m = inputs
        results = [one_group(xz[k], None if m is None else m[k], *carry[k], keeps[k]) for k in range(groups)]
        return tuple(r[0] for r in results), tuple(r[1] for r in results)

    carry0 = tuple(zip(_rows(c0, groups), _rows(h0, groups)))
    carry, per_group = jax.lax.scan(step, carry0, (_grouped(x_proj, groups), _grouped(mask, groups)),
                                    reverse=reverse, unroll=unroll)
    c_t = jnp.concatenate([c for c, _ in carry]) if groups > 1 else carry[0][0]
    h_t = jnp.concatenate([h for _, h in carry]) if groups > 1 else carry[0][1]
    return (c_t, h_t), per_group


@partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def fused_lstm(x_proj, kernel_hh, c0, h0, mask, h_keep, reverse=False, groups=1, unroll=1):
    """The LSTM recurrence with a hand-written backward pass.

    Args:
      x_proj: float[T, B, 4H], input projection plus bias for every step (gate order i, f, g, o).
      kernel_hh: float[H, 4H].
      c0, h0: float[B, H], the initial state.
      mask: bool[T, B] or None; masked steps keep the state and output zeros.
      h_keep: float[B, H] or None, recurrent dropout multiplier on h before the matmul (it
        gets no gradient: it is a sampled constant).
      reverse: scan from the last step to the first.
      groups: independent batch row groups per loop step (must divide B).
      unroll: steps per loop iteration.

    Returns ((c_T, h_T), outputs float[T, B, H]).
    """
    final, per_group = _forward(x_proj, kernel_hh, c0, h0, mask, h_keep, reverse, groups, unroll)
    return final, _join([g[0] for g in per_group])


def _fused_fwd(x_proj, kernel_hh, c0, h0, mask, h_keep, reverse, groups, unroll):
    final, per_group = _forward(x_proj, kernel_hh, c0, h0, mask, h_keep, reverse, groups, unroll)
    out = _join([g[0] for g in per_group])
    h_seqs = tuple(g[0] if g[1] is None else g[1] for g in per_group)
    c_prevs, gates = tuple(g[2] for g in per_group), tuple(g[3] for g in per_group)
    return (final, out), (kernel_hh, h0, mask, h_keep, h_seqs, c_prevs, gates)


def _fused_bwd(reverse, groups, unroll, residuals, cotangents):
    kernel_hh, h0, mask, h_keep, h_seqs, c_prevs, gates = residuals
    (dc_last, dh_last), d_out = cotangents
    kernel_t = kernel_hh.T
    keeps = _rows(h_keep, groups)

    def one_group(dc, dh, d_o, a, cp, h_prev, m, keep):
        if m is None:
            d_new_h, d_new_c = dh + d_o, dc
        else:  # a masked step passes the cotangents straight to the step before it
            keep_row = m[:, None]
            d_new_h, d_new_c = jnp.where(keep_row, dh + d_o, 0.0), jnp.where(keep_row, dc, 0.0)
        i, f, g, o = jnp.split(a, 4, axis=-1)
        tanh_c = jnp.tanh(f * cp + i * g)
        dc_total = d_new_c + d_new_h * o * (1.0 - tanh_c * tanh_c)
        dz = jnp.concatenate([dc_total * g * i * (1.0 - i), dc_total * cp * f * (1.0 - f),
                              dc_total * i * (1.0 - g * g), d_new_h * tanh_c * o * (1.0 - o)], axis=-1)
        dh_prev = dz @ kernel_t
        if keep is not None:
            dh_prev = dh_prev * keep
        dc_prev = dc_total * f
        if m is not None:
            dh_prev = dh_prev + jnp.where(keep_row, 0.0, dh)
            dc_prev = dc_prev + jnp.where(keep_row, 0.0, dc)
        if WEIGHT_GRAD_AFTER_LOOP:
            return (dc_prev, dh_prev), dz, None
        h_in = h_prev if keep is None else h_prev * keep
        return (dc_prev, dh_prev), dz, jnp.einsum("bh,bg->hg", h_in, dz)

    def step(carry, inputs):
        dcarry, dw = carry
        d_o, a, cp, hp, m = inputs
        results = [one_group(*dcarry[k], d_o[k], a[k], cp[k], hp[k], None if m is None else m[k], keeps[k])
                   for k in range(groups)]
        for r in results:
            dw = dw if r[2] is None else dw + r[2]
        return (tuple(r[0] for r in results), dw), tuple(r[1] for r in results)

    carry0 = tuple(zip(_rows(dc_last, groups), _rows(dh_last, groups)))
    h_prevs = tuple(_previous(h_seqs[k], h0_rows, reverse) for k, h0_rows in enumerate(_rows(h0, groups)))
    xs = (_grouped(d_out, groups), gates, c_prevs, h_prevs, _grouped(mask, groups))
    (carry, d_kernel), dzs = jax.lax.scan(step, (carry0, jnp.zeros_like(kernel_hh)), xs,
                                          reverse=not reverse, unroll=unroll)
    dc0 = jnp.concatenate([c for c, _ in carry]) if groups > 1 else carry[0][0]
    dh0 = jnp.concatenate([h for _, h in carry]) if groups > 1 else carry[0][1]
    if WEIGHT_GRAD_AFTER_LOOP:  # one big matmul per group
        for k, h_prev in enumerate(h_prevs):
            h_in = h_prev if keeps[k] is None else h_prev * keeps[k]
            d_kernel = d_kernel + jnp.einsum("tbh,tbg->hg", h_in, dzs[k])
    return _join(list(dzs)), d_kernel, dc0, dh0, None, None


fused_lstm.defvjp(_fused_fwd, _fused_bwd)

