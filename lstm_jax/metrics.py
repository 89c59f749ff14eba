"""Loss and accuracy as sums over weighted tokens, so batches and epochs add up exactly."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
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


def forgetting_summary(matrix) -> dict:
    """Summary of an accuracy matrix A[i][j] = accuracy on dataset j after training on dataset i
    (in order i = 0..N-1), as in Chaudhry et al. 2018 (Riemannian Walk):

    final_average_accuracy = mean_j A[N-1][j];
    average_forgetting = mean over j < N-1 of (max_{j <= i < N-1} A[i][j] - A[N-1][j]).
    """
    a = np.asarray(matrix, np.float64)
    n = a.shape[0]
    drops = [a[j:n - 1, j].max() - a[n - 1, j] for j in range(n - 1)]
    return {"final_average_accuracy": float(a[n - 1].mean()),
            "average_forgetting": float(np.mean(drops)) if drops else 0.0}
