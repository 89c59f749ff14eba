"""Training on long sequences with memory that grows sublinearly in their length.

Backprop through T steps normally keeps every step's activations: memory linear in T.
`remat_segments` cuts the time axis into segments and wraps each in `jax.checkpoint`: the
forward pass keeps only the state entering each segment, and the backward pass recomputes one
segment's activations at a time. Memory is then ~ (T / segment) states + one segment's
activations, i.e. ~ sqrt(T) with segment ~ sqrt(T), for the price of one extra forward pass.
The gradient is exactly full backprop through time (unlike truncated backprop, which
`train.stateful_train_step` offers for unbounded streams).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstm_jax.errors import ArgumentError
from lstm_jax.training._metrics import token_sums


def remat_segments(segment_fn, carry, xs, segment: int):
    """Run `segment_fn(carry, xs_segment) -> (carry, ys)` over batch-major `xs` in segments.

    Args:
      segment_fn: a function of the carry and one segment of every leaf of `xs`
        ([B, segment, ...]); its activations are recomputed during the backward pass.
      carry: the initial carry (e.g. the LSTM state).
      xs: a pytree of arrays [B, T, ...] with T a multiple of `segment`.
      segment: steps per segment.

    Returns (final carry, ys stacked over segments: [T / segment, ...] per leaf).
    """
    steps = jax.tree.leaves(xs)[0].shape[1]
    if segment < 1 or steps % segment:
        raise ArgumentError(f"segment: expected a divisor of the sequence length {steps}, found {segment}")
    n = steps // segment

    def to_segments(x):  # [B, T, ...] -> [n, B, segment, ...]
        return jnp.swapaxes(x.reshape(x.shape[0], n, segment, *x.shape[2:]), 0, 1)

    return jax.lax.scan(jax.checkpoint(segment_fn), carry, jax.tree.map(to_segments, xs))


def segmented_token_sums(apply_fn, params, batch: dict, segment: int, carry=None):
    """`metrics.token_sums` of a token model over long rows, computed segment by segment.

    `apply_fn(variables, tokens, state) -> (logits, state)` (e.g. `CharLM.apply`); batch holds
    "inputs", "targets" int32[B, T] and "weights" float32[B, T]. Each row starts from `carry`
    (zeros when None) and carries its state across segments, so the sums and their gradients
    equal one pass over the whole rows. Returns (sums, final state).
    """

    def one_segment(state, seg):
        logits, state = apply_fn({"params": params}, seg["inputs"], state)
        return state, token_sums(logits, seg["targets"], seg["weights"])

    if carry is None:
        carry = jax.eval_shape(lambda: apply_fn({"params": params}, batch["inputs"][:, :1], None))[1]
        carry = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), carry)
    final, sums = remat_segments(one_segment, carry, batch, segment)
    return jax.tree.map(jnp.sum, sums), final
