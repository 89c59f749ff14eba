"""The fast path of the recurrence: one scan per direction with a hand-written backward pass.

Autodiff of a scan saves every intermediate of every step, and the usual way of hoisting the
input projection out of the loop writes and reads [T, B, 4H] tensors (x W_ih, and its gradient)
that on a CPU cost more in memory traffic than the one big matmul saves. Here instead:

- forward: each step does one matmul [x_t, h] @ [W_ih; W_hh] (input and recurrent kernels
  stacked) and the gates, and stores only what the backward needs: the four gate activations
  a = [i, f, g, o] and the cell state before the step;
- backward: one reverse scan whose carry is (dh, dc) plus the running weight and bias
  gradients; each step computes dz = dL/d(pre-activations) from the stored gates, one matmul
  dz @ [W_ih; W_hh]^T giving dx_t and dh at once, and adds [x_t, h]^T dz to the weight gradient.
  No [T, B, 4H] tensor other than the stored gates is ever materialised.

Sigmoid is written as 0.5 * tanh(0.5 x) + 0.5, so the four gates are one tanh over [B, 4H]
(XLA's CPU tanh is a fast rational approximation; its logistic is exp + divide).

`reset` (bool[T, B] in scan order) zeroes the state of the selected rows before a step; the
backward pass stops the cotangents of the state there. With `dtype` (mixed precision) the
matmul operands are cast to it inside the loop, products and the weight gradients accumulate
in float32, and the gates and c stay float32 (see `lstm.py`).

`groups` splits the batch into independent row blocks whose recurrences are separate ops in
the loop body, so XLA's CPU runtime can run them concurrently on different cores.

`zoneout` (Krueger et al. 2016) is (keep_c, keep_h), as in `lstm.lstm_scan`: with the candidate
c~ = f * c + i * g and h~ = o * tanh(c~) (the candidate cell, as in the paper and `lstm_scan`),
the step's state is c' = k_c * c + (1 - k_c) * c~ and h' = k_h * h + (1 - k_h) * h~, where k is a
bool[T, B, H] mask (training: True keeps the previous unit) or a float scalar rate (evaluation:
the expectation). The backward pass splits each state cotangent into the part that reaches the
candidate (and through it the gates) and the part that skips the step to the previous state.
Nothing more is stored: the masks (as 0/1 multipliers, see `_zone_multipliers`) are inputs and
the rates constants. Without zoneout the traced computation is exactly the one without the
feature.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp


def matmul(a, b, dtype=None):
    """a @ b; with a compute dtype, both operands cast to it and the product accumulated in float32."""
    if dtype is None:
        return a @ b
    return jnp.matmul(a.astype(dtype), b.astype(dtype), preferred_element_type=jnp.promote_types(dtype, jnp.float32))


def _gate_constants(hidden: int, dtype):
    """scale, offset float[4H]: a = tanh(z * scale) * scale + offset gives [sig, sig, tanh, sig]."""
    half, one, zero = (jnp.full((hidden,), v, dtype) for v in (0.5, 1.0, 0.0))
    return jnp.concatenate([half, half, one, half]), jnp.concatenate([half, half, zero, half])


def _grouped(x, groups: int):
    """Time-major [T, B, ...] -> [T, groups, B / groups, ...] (a free reshape); None stays None.
    With one group the array is returned as it is (and indexed per group as a 1-tuple)."""
    if x is None or groups == 1:
        return x
    return x.reshape(x.shape[0], groups, x.shape[1] // groups, *x.shape[2:])


def _group(x, k: int, groups: int):
    """Group k of one step of a `_grouped` array."""
    return x if x is None or groups == 1 else x[k]


def _rows(x, groups: int):
    """Batch-major [B, ...] -> list of `groups` row blocks; None -> list of None."""
    if x is None:
        return [None] * groups
    return [x] if groups == 1 else list(x.reshape(groups, x.shape[0] // groups, *x.shape[1:]))


def _join(blocks, axis: int = 1):
    return blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks, axis=axis)


def _previous(seq, first, reverse: bool):
    """The value before each step in scan order: seq shifted by one step, `first` at the start."""
    if reverse:
        return jnp.concatenate([seq[1:], first[None]], 0)
    return jnp.concatenate([first[None], seq[:-1]], 0)


def _zone(previous, new, keep_previous):
    """Zoneout forward: k * previous + (1 - k) * new for a float k (a 0/1 multiplier from a training
    mask, or the evaluation rate; as `lstm._zone` computes the latter); None is no zoneout."""
    if keep_previous is None:
        return new
    return (keep_previous * previous + (1.0 - keep_previous) * new).astype(new.dtype)


def _zone_split(d, keep_previous):
    """Zoneout backward: the cotangent d of the zoned value -> (the candidate's, the previous value's)."""
    if keep_previous is None:
        return d, None
    return (1.0 - keep_previous) * d, keep_previous * d


def _zone_multipliers(zoneout, c0, h0):
    """zoneout with each bool[T, B, n] mask as 0/1 in the dtype of its state (c0's, h0's). With
    k in {0, 1} the mixing form k * previous + (1 - k) * new selects the same (finite) values as
    `jnp.where`, and XLA's CPU backend runs the backward scan much faster on float multipliers
    than on boolean selects (measured at B=32, T=64, H=128, masks given: a value-and-gradient
    step cost about 30% more than without zoneout with selects, about 12% with multipliers)."""
    if zoneout is None:
        return None
    return tuple(
        z.astype(state.dtype) if z is not None and jnp.ndim(z) == 3 and z.dtype == jnp.bool_ else z
        for z, state in zip(zoneout, (c0, h0))
    )


def _zone_parts(zoneout, groups: int):
    """(per-step scan inputs, per-group constants) from zoneout (keep_c, keep_h) or None: a
    per-step keep [T, B, n] is grouped like x, a scalar rate is the same for every group."""
    if zoneout is None:
        return None, None
    steps = tuple(_grouped(z, groups) if z is not None and jnp.ndim(z) == 3 else None for z in zoneout)
    constants = tuple(jnp.asarray(z) if z is not None and jnp.ndim(z) != 3 else None for z in zoneout)
    return steps, constants


def _zone_group(steps, constants, k: int, groups: int):
    """(keep_c, keep_h) of group k at one step, or None without zoneout."""
    if steps is None:
        return None
    return tuple(c if s is None else _group(s, k, groups) for s, c in zip(steps, constants))


def _forward(x, kernel, bias, c0, h0, mask, h_keep, reverse, groups, unroll, reset=None, dtype=None, zoneout=None):
    """Forward scan with kernel = [W_ih; W_hh] float[F + H, 4H]. Returns ((c_T, h_T), per-group
    tuples (out, h_state, c_prev, gates)), each block time-major [T, B / groups, ...];
    h_state is None without a mask (it equals out); c_prev is the cell after any reset."""
    scale, offset = _gate_constants(c0.shape[-1], x.dtype if dtype is None else c0.dtype)
    keeps = _rows(h_keep, groups)
    zone_steps, zone_constants = _zone_parts(zoneout, groups)

    def one_group(x_t, m, r, c, h, keep, zone=None):
        if r is not None:
            c, h = jnp.where(r[:, None], 0.0, c), jnp.where(r[:, None], 0.0, h)
        h_in = h if keep is None else h * keep
        z = matmul(jnp.concatenate([x_t, h_in], axis=-1), kernel, dtype) + bias
        a = jnp.tanh(z * scale) * scale + offset
        i, f, g, o = jnp.split(a, 4, axis=-1)
        c_new = f * c + i * g
        h_new = o * jnp.tanh(c_new)
        if dtype is not None:
            h_new = h_new.astype(h.dtype)
        if zone is not None:
            c_new, h_new = _zone(c, c_new, zone[0]), _zone(h, h_new, zone[1])
        if m is None:
            return (c_new, h_new), (h_new, None, c, a)
        keep_row = m[:, None]
        c_next, h_next = jnp.where(keep_row, c_new, c), jnp.where(keep_row, h_new, h)
        return (c_next, h_next), (jnp.where(keep_row, h_new, 0.0), h_next, c, a)

    def step(carry, inputs):
        x_t, m, r, *zs = inputs
        results = [
            one_group(
                _group(x_t, k, groups),
                _group(m, k, groups),
                _group(r, k, groups),
                *carry[k],
                keeps[k],
                _zone_group(zs[0] if zs else None, zone_constants, k, groups),
            )
            for k in range(groups)
        ]
        return tuple(r[0] for r in results), tuple(r[1] for r in results)

    carry0 = tuple(zip(_rows(c0, groups), _rows(h0, groups)))
    xs = (_grouped(x, groups), _grouped(mask, groups), _grouped(reset, groups))
    if zone_steps is not None:
        xs = (*xs, zone_steps)
    carry, per_group = jax.lax.scan(step, carry0, xs, reverse=reverse, unroll=unroll)
    return (_join([c for c, _ in carry], 0), _join([h for _, h in carry], 0)), per_group


@partial(jax.custom_vjp, nondiff_argnums=(8, 9, 10, 12))
def fused_lstm(
    x,
    kernel_ih,
    kernel_hh,
    bias,
    c0,
    h0,
    mask,
    h_keep,
    reverse=False,
    groups=1,
    unroll=1,
    reset=None,
    dtype=None,
    zoneout=None,
):
    """The LSTM recurrence over time-major inputs, with a hand-written backward pass.

    Args:
      x: float[T, B, F], the layer's inputs (time-major).
      kernel_ih: float[F, 4H]; kernel_hh: float[H, 4H]; bias: float[4H] (gate order i, f, g, o).
      c0, h0: float[B, H], the initial state.
      mask: bool[T, B] or None; masked steps keep the state and output zeros.
      h_keep: float[B, H] or None, recurrent dropout multiplier on h before the matmul (it
        gets no gradient: it is a sampled constant).
      reverse: scan from the last step to the first.
      groups: independent batch row groups per loop step (must divide B).
      unroll: steps per loop iteration.
      reset: bool[T, B] or None: where True the state is zeroed before the step (scan order).
      dtype: None, or the compute dtype of mixed precision: x, h0, h_keep and the outputs are
        then in it, c0 and the kernels and bias float32.
      zoneout: None, or (keep_c, keep_h), each None, bool[T, B, H] (training: where True the unit
        keeps its previous value; time order, like x) or a float scalar (evaluation: the rate,
        mixing in expectation); no gradient (see the module docstring).

    Returns ((c_T, h_T), outputs float[T, B, H]).
    """
    kernel = jnp.concatenate([kernel_ih, kernel_hh], axis=0)
    zoneout = _zone_multipliers(zoneout, c0, h0)
    final, per_group = _forward(x, kernel, bias, c0, h0, mask, h_keep, reverse, groups, unroll, reset, dtype, zoneout)
    return final, _join([g[0] for g in per_group])  # the residuals stay unbuilt: no backward pass


def _fused_fwd(x, kernel_ih, kernel_hh, bias, c0, h0, mask, h_keep, reverse, groups, unroll, reset, dtype, zoneout):
    kernel = jnp.concatenate([kernel_ih, kernel_hh], axis=0)
    zoneout = _zone_multipliers(zoneout, c0, h0)
    final, per_group = _forward(x, kernel, bias, c0, h0, mask, h_keep, reverse, groups, unroll, reset, dtype, zoneout)
    out = _join([g[0] for g in per_group])
    h_seqs = tuple(g[0] if g[1] is None else g[1] for g in per_group)
    c_prevs, gates = tuple(g[2] for g in per_group), tuple(g[3] for g in per_group)
    return (final, out), (x, kernel, h0, mask, h_keep, reset, h_seqs, c_prevs, gates, zoneout)


def _fused_bwd(reverse, groups, unroll, dtype, residuals, cotangents):
    x, kernel, h0, mask, h_keep, reset, h_seqs, c_prevs, gates, zoneout = residuals
    (dc_last, dh_last), d_out = cotangents
    if dtype is not None:  # the state's cotangents travel in float32
        dh_last = dh_last.astype(dc_last.dtype)
    features, hidden = x.shape[-1], kernel.shape[-1] // 4
    kernel_t = kernel.T
    is_sigmoid = (jnp.arange(4 * hidden) // hidden) != 2  # i, f, o are sigmoids; g is tanh
    keeps = _rows(h_keep, groups)
    zone_steps, zone_constants = _zone_parts(zoneout, groups)

    def one_group(dc, dh, d_o, a, cp, x_t, h_prev, m, r, keep, zone=None):
        if m is None:
            d_new_h, d_new_c = dh + d_o, dc
        else:  # a masked step passes the cotangents straight to the step before it
            keep_row = m[:, None]
            d_new_h, d_new_c = jnp.where(keep_row, dh + d_o, 0.0), jnp.where(keep_row, dc, 0.0)
        if zone is not None:  # from here d_new_* are the candidates' cotangents; skip_* go to the previous state
            (d_new_c, skip_c), (d_new_h, skip_h) = _zone_split(d_new_c, zone[0]), _zone_split(d_new_h, zone[1])
        i, f, g, o = jnp.split(a, 4, axis=-1)
        tanh_c = jnp.tanh(f * cp + i * g)
        dc_total = d_new_c + d_new_h * o * (1.0 - tanh_c * tanh_c)
        # dz = dL/dz for the four gates as one [B, 4H] expression (one loop fusion in XLA):
        # d(sigmoid) = s (1 - s), d(tanh) = 1 - t^2, i.e. slope * a * (1 - a) + (1 - slope) * (1 - a^2).
        d_act = jnp.concatenate([dc_total * g, dc_total * cp, dc_total * i, d_new_h * tanh_c], axis=-1)
        dz = d_act * jnp.where(is_sigmoid, a * (1.0 - a), 1.0 - a * a)
        d_xh = matmul(dz, kernel_t, dtype)  # [dx_t, dh_prev] in one matmul
        dx, dh_prev = d_xh[:, :features], d_xh[:, features:]
        if dtype is not None:
            dx = dx.astype(x_t.dtype)
        if r is not None:  # the state this step saw was zero
            h_prev = jnp.where(r[:, None], 0.0, h_prev)
        h_in = h_prev if keep is None else h_prev * keep
        if keep is not None:
            dh_prev = dh_prev * keep
        dc_prev = dc_total * f
        if zone is not None:
            dh_prev = dh_prev if skip_h is None else dh_prev + skip_h
            dc_prev = dc_prev if skip_c is None else dc_prev + skip_c
        if m is not None:
            dh_prev = dh_prev + jnp.where(keep_row, 0.0, dh)
            dc_prev = dc_prev + jnp.where(keep_row, 0.0, dc)
        if r is not None:  # nothing flows through a reset to the steps before it
            dh_prev, dc_prev = jnp.where(r[:, None], 0.0, dh_prev), jnp.where(r[:, None], 0.0, dc_prev)
        d_kernel = matmul(jnp.concatenate([x_t, h_in], axis=-1).T, dz, dtype)
        return (dc_prev, dh_prev), dx, d_kernel, jnp.sum(dz, axis=0)

    def step(carry, inputs):
        states, d_kernel, d_bias = carry
        d_o, a, cp, x_t, hp, m, r, *zs = inputs
        results = [
            one_group(
                *states[k],
                _group(d_o, k, groups),
                a[k],
                cp[k],
                _group(x_t, k, groups),
                hp[k],
                _group(m, k, groups),
                _group(r, k, groups),
                keeps[k],
                _zone_group(zs[0] if zs else None, zone_constants, k, groups),
            )
            for k in range(groups)
        ]
        for r in results:
            d_kernel, d_bias = d_kernel + r[2], d_bias + r[3]
        return (tuple(r[0] for r in results), d_kernel, d_bias), tuple(r[1] for r in results)

    h0_rows = _rows(h0, groups)
    h_prevs = tuple(_previous(h_seqs[k], h0_rows[k], reverse) for k in range(groups))
    carry0 = (
        tuple(zip(_rows(dc_last, groups), _rows(dh_last, groups))),
        jnp.zeros_like(kernel),
        jnp.zeros(kernel.shape[-1], kernel.dtype),
    )
    xs = (
        _grouped(d_out, groups),
        gates,
        c_prevs,
        _grouped(x, groups),
        h_prevs,
        _grouped(mask, groups),
        _grouped(reset, groups),
    )
    if zone_steps is not None:
        xs = (*xs, zone_steps)
    (states, d_kernel, d_bias), dxs = jax.lax.scan(step, carry0, xs, reverse=not reverse, unroll=unroll)
    dc0 = _join([c for c, _ in states], 0)
    dh0 = _join([h for _, h in states], 0)
    if dtype is not None:
        dh0 = dh0.astype(h0.dtype)
    return (_join(list(dxs)), d_kernel[:features], d_kernel[features:], d_bias, dc0, dh0, None, None, None, None)


fused_lstm.defvjp(_fused_fwd, _fused_bwd)
