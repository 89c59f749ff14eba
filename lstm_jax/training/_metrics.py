"""Loss and accuracy as sums over weighted tokens, so batches and epochs add up exactly."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


class MetricSums(NamedTuple):
    """Sums over weighted tokens (float32[] each): cross-entropy, correct argmax predictions, and
    the total weight. A pytree, so sums add with `a.add(b)` inside and outside `jit`."""

    loss: jax.Array
    correct: jax.Array
    count: jax.Array

    @classmethod
    def zeros(cls) -> MetricSums:
        return cls(jnp.float32(0), jnp.float32(0), jnp.float32(0))

    def add(self, other: MetricSums) -> MetricSums:
        return MetricSums(*(a + b for a, b in zip(self, other)))

    def mean_loss(self) -> jax.Array:
        """Mean cross-entropy per unit of weight (0 when nothing was counted)."""
        return self.loss / jnp.maximum(self.count, 1.0)

    def summary(self, prefix: str = "") -> dict[str, float]:
        """{"<prefix>loss": mean cross-entropy, "<prefix>accuracy": fraction correct} as Python floats."""
        count = max(float(self.count), 1.0)
        return {f"{prefix}loss": float(self.loss) / count, f"{prefix}accuracy": float(self.correct) / count}

    def to_numpy(self) -> MetricSums:
        """The sums as NumPy float32 scalars (host values, e.g. to store in a checkpoint)."""
        return MetricSums(*(np.float32(v) for v in self))


def token_sums(logits, targets, weights) -> MetricSums:
    """Sums over tokens of cross-entropy and correct argmax predictions.

    logits float32[B, T, V], targets int32[B, T], weights float32[B, T] (0 for padding).
    """
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
    return MetricSums(loss=jnp.sum(ce * weights), correct=jnp.sum(correct * weights), count=jnp.sum(weights))


def with_bits(row: dict) -> dict:
    """`row` plus, for each "<prefix>loss" (mean cross-entropy in nats per token), the language-
    modelling figures "<prefix>bpc" (bits per token, loss / ln 2) and "<prefix>perplexity"
    (exp(loss)), placed after it."""
    out = {}
    for key, value in row.items():
        out[key] = value
        if key.endswith("loss"):
            stem = key[: -len("loss")]
            out[f"{stem}bpc"] = float(value) / float(np.log(2.0))
            out[f"{stem}perplexity"] = float(np.exp(min(float(value), 700.0)))
    return out


def forgetting_summary(matrix) -> dict:
    """Summary of an accuracy matrix A[i][j] = accuracy on dataset j after training on dataset i
    (in order i = 0..N-1), as in Chaudhry et al. 2018 (Riemannian Walk):

    final_average_accuracy = mean_j A[N-1][j];
    average_forgetting = mean over j < N-1 of (max_{j <= i < N-1} A[i][j] - A[N-1][j]).
    """
    a = np.asarray(matrix, np.float64)
    n = a.shape[0]
    drops = [a[j : n - 1, j].max() - a[n - 1, j] for j in range(n - 1)]
    return {
        "final_average_accuracy": float(a[n - 1].mean()),
        "average_forgetting": float(np.mean(drops)) if drops else 0.0,
    }
