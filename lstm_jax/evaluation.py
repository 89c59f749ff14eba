"""Evaluation of token models on window sets: exact loss/accuracy sums and next-token logits,
each one compiled scan over padded batches.

Windows are int32[N, T+1]: inputs are [:, :-1], targets [:, 1:].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax.metrics import MetricSums, token_sums
from lstm_jax.timing import Timed


def split_window(w):
    """Batch of windows int32[B, T+1] -> {"inputs", "targets": int32[B, T], "weights": float32[B, T]}."""
    return {"inputs": w[:, :-1], "targets": w[:, 1:], "weights": jnp.ones(w[:, 1:].shape, jnp.float32)}


def _pad_batches(windows: np.ndarray, batch_size: int):
    """Pad windows int32[N, T+1] with zero rows to whole batches: (int32[K, B, T+1], float32[K, B])."""
    n = windows.shape[0]
    k = -(-n // batch_size)
    padded = np.zeros((k * batch_size,) + windows.shape[1:], windows.dtype)
    padded[:n] = windows
    row_weight = np.zeros(k * batch_size, np.float32)
    row_weight[:n] = 1.0
    return padded.reshape(k, batch_size, -1), row_weight.reshape(k, batch_size)


def make_evaluate(apply_fn):
    """A jitted `(params, batches int32[K, B, T+1], row_weight float32[K, B]) -> MetricSums`."""

    def evaluate(params, batches, row_weight):
        def body(total, inputs):
            w, rw = inputs
            batch = split_window(w)
            logits, _ = apply_fn({"params": params}, batch["inputs"])
            sums = token_sums(logits, batch["targets"], batch["weights"] * rw[:, None])
            return total.add(sums), None

        total, _ = jax.lax.scan(body, MetricSums.zeros(), (batches, row_weight))
        return total

    return jax.jit(evaluate)


def make_predict(apply_fn):
    """A jitted `(params, batches int32[K, B, T+1]) -> logits float32[K, B, T, V]`."""

    def predict(params, batches):
        def body(_, w):
            logits, _ = apply_fn({"params": params}, w[:, :-1])
            return None, logits

        return jax.lax.scan(body, None, batches)[1]

    return jax.jit(predict)


class Evaluator:
    """Loss/accuracy and logits of a model on window sets, compiled once per shape and timed."""

    def __init__(self, apply_fn, batch_size: int):
        self.batch_size = batch_size
        self.evaluate = Timed(make_evaluate(apply_fn))
        self.predict_fn = Timed(make_predict(apply_fn))

    def metrics(self, params, windows: np.ndarray, prefix: str = "") -> dict:
        batches, row_weight = _pad_batches(windows, self.batch_size)
        return self.evaluate(params, batches, row_weight).summary(prefix)

    def predict(self, params, windows: np.ndarray) -> np.ndarray:
        """Next-token logits float32[N, T, V] for windows int32[N, T+1]."""
        batches, _ = _pad_batches(windows, self.batch_size)
        logits = np.asarray(self.predict_fn(params, batches))
        return logits.reshape((-1,) + logits.shape[2:])[: windows.shape[0]]
