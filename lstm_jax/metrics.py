"""Loss and accuracy as sums over weighted tokens, so batches and epochs add up exactly."""

from __future__ import annotations

import jax.numpy as jnp
import optax


def token_sums(logits, targets, weights) -> dict:
    """Sums over tokens of cross-entropy and correct argmax predictions.

    logits float32[B, T, V], targets int32[B, T], weights float32[B, T] (0 for padding).
    Returns {"loss": float32[], "correct": float32[], "count": float32[]}.
    """
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
    return {
        "loss": jnp.sum(ce * weights),
        "correct": jnp.sum(correct * weights),
        "count": jnp.sum(weights),
    }


def summarize(sums: dict, prefix: str = "") -> dict:
    """{"<prefix>loss": mean cross-entropy, "<prefix>accuracy": fraction correct} as Python floats."""
    count = max(float(sums["count"]), 1.0)
    return {f"{prefix}loss": float(sums["loss"]) / count, f"{prefix}accuracy": float(sums["correct"]) / count}
