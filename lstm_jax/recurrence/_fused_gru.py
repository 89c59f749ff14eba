"""The GRU's fast path: one scan per direction with a hand-written backward pass (see `fused.py`).

The GRU needs x_n = x W_in + b_in apart from h_n = h W_hn + b_hn (r multiplies only the latter),
so the input projection x_proj = x W_ih + b_ih float32[T, B, 3H] is computed for all steps as one
matmul before the loop (in `gru.py`, under autodiff: its gradients dW_ih = x^T dx_proj and
dx = dx_proj W_ih^T are again one big matmul each, after the backward loop). `fused_gru` runs the
recurrence from x_proj:

- forward: each step does one matmul h @ W_hh [B, 3H] and the gates, and stores only what the
  backward needs: [r, z], n and h_n (h_prev is the output sequence shifted by one step);
- backward: one reverse scan whose carry is dh; each step computes dx_proj = dL/d[x_r, x_z, x_n]
  and dL/d(h W_hh + b_hh) = [dx_r, dx_z, r * dx_n] (both emitted, [B, 3H]) and one matmul giving
  dh_prev. The gradients of W_hh and b_hh are then one matmul h_prev^T dL/d(h W_hh) and one sum
  over all steps after the loop: measured a little faster than accumulating [H, 3H] per step in
  the carry (as `fused.py` does), whose per-step matmul contracts over only B rows.

As in `fused.py`: sigmoid is 0.5 * tanh(0.5 x) + 0.5 (r and z are one tanh over [B, 2H]);
`reset` (bool[T, B] in scan order) zeroes the state of the selected rows before a step and the
backward pass stops the cotangent there; with `dtype` (mixed precision) the matmul operands are
cast to it, products and weight gradients accumulate in float32, the gates are float32 and h is
stored in `dtype`; `groups` splits the batch into independent row blocks per loop step.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from lstm_jax.recurrence._fused import _group, _grouped, _join, _previous, _rows, matmul


def _forward(x_proj, kernel_hh, bias_hh, h0, mask, h_keep, reverse, groups, unroll, reset, dtype):
    """Returns (h_T, per-group tuples (out, h_state, rz, n, h_n)), each block time-major
    [T, B / groups, ...]; h_state is None without a mask (it equals out)."""
    hidden = h0.shape[-1]
    keeps = _rows(h_keep, groups)

    def one_group(xp, m, r, h, keep):
        if r is not None:
            h = jnp.where(r[:, None], jnp.zeros_like(h), h)
        hp = matmul(h if keep is None else h * keep, kernel_hh, dtype) + bias_hh
        rz = jnp.tanh((xp[:, : 2 * hidden] + hp[:, : 2 * hidden]) * 0.5) * 0.5 + 0.5
        reset_gate, update = rz[:, :hidden], rz[:, hidden:]
        h_n = hp[:, 2 * hidden :]
        n = jnp.tanh(xp[:, 2 * hidden :] + reset_gate * h_n)
        h_new = ((1.0 - update) * n + update * h.astype(n.dtype)).astype(h.dtype)
        if m is None:
            return h_new, (h_new, None, rz, n, h_n)
        keep_row = m[:, None]
        h_next = jnp.where(keep_row, h_new, h)
        return h_next, (jnp.where(keep_row, h_new, jnp.zeros_like(h_new)), h_next, rz, n, h_n)

    def step(carry, inputs):
        xp, m, r = inputs
        results = [
            one_group(_group(xp, k, groups), _group(m, k, groups), _group(r, k, groups), carry[k], keeps[k])
            for k in range(groups)
        ]
        return tuple(res[0] for res in results), tuple(res[1] for res in results)

    xs = (_grouped(x_proj, groups), _grouped(mask, groups), _grouped(reset, groups))
    carry, per_group = jax.lax.scan(step, tuple(_rows(h0, groups)), xs, reverse=reverse, unroll=unroll)
    return _join(list(carry), 0), per_group


@partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8, 10))
def fused_gru(x_proj, kernel_hh, bias_hh, h0, mask, h_keep, reverse=False, groups=1, unroll=1, reset=None, dtype=None):
    """The GRU recurrence over time-major projected inputs, with a hand-written backward pass.

    Args:
      x_proj: float32[T, B, 3H], x W_ih + b_ih for every step (gate order r, z, n).
      kernel_hh: float32[H, 3H]; bias_hh: float32[3H] (b_hn is inside r * (...)).
      h0: float[B, H], the initial state.
      mask: bool[T, B] or None; masked steps keep the state and output zeros.
      h_keep: float[B, H] or None, recurrent dropout multiplier on h before the matmul (it
        gets no gradient: it is a sampled constant).
      reverse: scan from the last step to the first.
      groups: independent batch row groups per loop step (must divide B).
      unroll: steps per loop iteration.
      reset: bool[T, B] or None: where True the state is zeroed before the step (scan order).
      dtype: None, or the compute dtype of mixed precision: h0, h_keep and the outputs are then
        in it; x_proj, the kernel and the bias float32.

    Returns (h_T, outputs float[T, B, H]).
    """
    h_last, per_group = _forward(x_proj, kernel_hh, bias_hh, h0, mask, h_keep, reverse, groups, unroll, reset, dtype)
    return h_last, _join([g[0] for g in per_group])


def _fused_fwd(x_proj, kernel_hh, bias_hh, h0, mask, h_keep, reverse, groups, unroll, reset, dtype):
    h_last, per_group = _forward(x_proj, kernel_hh, bias_hh, h0, mask, h_keep, reverse, groups, unroll, reset, dtype)
    out = _join([g[0] for g in per_group])
    h_seqs = tuple(g[0] if g[1] is None else g[1] for g in per_group)
    stored = tuple(g[2:] for g in per_group)
    return (h_last, out), (kernel_hh, h0, mask, h_keep, reset, h_seqs, stored)


def _fused_bwd(reverse, groups, unroll, dtype, residuals, cotangents):
    kernel_hh, h0, mask, h_keep, reset, h_seqs, stored = residuals
    dh_last, d_out = cotangents
    dh_last = dh_last.astype(jnp.promote_types(dh_last.dtype, jnp.float32))  # travels in float32
    hidden = h0.shape[-1]
    kernel_t = kernel_hh.T
    keeps = _rows(h_keep, groups)

    def one_group(dh, d_o, gates, h_prev, m, r, keep):
        rz, n, h_n = gates
        reset_gate, update = rz[:, :hidden], rz[:, hidden:]
        if m is None:
            d_new = dh + d_o
        else:  # a masked step passes the cotangent straight to the step before it
            keep_row = m[:, None]
            d_new = jnp.where(keep_row, dh + d_o, 0.0)
        if r is not None:  # the state this step saw was zero
            h_prev = jnp.where(r[:, None], jnp.zeros_like(h_prev), h_prev)
        d_an = d_new * (1.0 - update) * (1.0 - n * n)  # dL/d(x_n + r * h_n)
        # dL/d[x_r, x_z] = dL/d[r, z] * s (1 - s), as one [B, 2H] expression
        d_rz = jnp.concatenate([d_an * h_n, d_new * (h_prev.astype(n.dtype) - n)], axis=-1) * rz * (1.0 - rz)
        d_hp = jnp.concatenate([d_rz, d_an * reset_gate], axis=-1)  # dL/d(h W_hh + b_hh)
        dh_prev = matmul(d_hp, kernel_t, dtype)
        if keep is not None:
            dh_prev = dh_prev * keep
        dh_prev = dh_prev + d_new * update
        if m is not None:
            dh_prev = dh_prev + jnp.where(keep_row, 0.0, dh)
        if r is not None:  # nothing flows through a reset to the steps before it
            dh_prev = jnp.where(r[:, None], 0.0, dh_prev)
        return dh_prev, (jnp.concatenate([d_rz, d_an], axis=-1), d_hp)

    def step(dhs, inputs):
        d_o, gates, hp, m, r = inputs
        results = [
            one_group(
                dhs[k],
                _group(d_o, k, groups),
                gates[k],
                hp[k],
                _group(m, k, groups),
                _group(r, k, groups),
                keeps[k],
            )
            for k in range(groups)
        ]
        return tuple(res[0] for res in results), tuple(res[1] for res in results)

    h0_rows = _rows(h0, groups)
    h_prevs = tuple(_previous(h_seqs[k], h0_rows[k], reverse) for k in range(groups))
    xs = (_grouped(d_out, groups), stored, h_prevs, _grouped(mask, groups), _grouped(reset, groups))
    dhs, per_group = jax.lax.scan(step, tuple(_rows(dh_last, groups)), xs, reverse=not reverse, unroll=unroll)
    # The weight gradients as one matmul over all steps: h_in^T dL/d(h W_hh), h_in being the
    # matmul's left operand (after resets and recurrent dropout).
    d_hp = _join([g[1] for g in per_group])
    h_in = _join(list(h_prevs))
    if reset is not None:
        h_in = jnp.where(reset[..., None], jnp.zeros_like(h_in), h_in)
    if h_keep is not None:
        h_in = h_in * h_keep
    if dtype is None:
        d_kernel = jnp.einsum("tbh,tbg->hg", h_in, d_hp)
    else:
        d_kernel = jnp.einsum(
            "tbh,tbg->hg", h_in.astype(dtype), d_hp.astype(dtype), preferred_element_type=kernel_hh.dtype
        )
    dh0 = _join(list(dhs), 0).astype(h0.dtype)
    return _join([g[0] for g in per_group]), d_kernel, jnp.sum(d_hp, axis=(0, 1)), dh0, None, None, None


fused_gru.defvjp(_fused_fwd, _fused_bwd)
