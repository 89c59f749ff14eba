"""Limits checked before anything is allocated: memory estimates and float32 ranges.

A configuration can be valid in every field and still unaffordable (`hidden_size:
1000000000000`, `eval_batch_size: 1000000000`): callers estimate the bytes a run holds at its
peak with the functions here and call `check_memory` before building anything, so such a run
ends in one `ConfigError` naming the knob instead of a MemoryError minutes later. Estimates are
deliberately rough (within a small factor) and err on the high side; the limit is the machine's
physical memory, or `LSTM_JAX_MEMORY_LIMIT` (bytes, or a number with K/M/G/T) where set.

Values used in float32 (learning rates, clip norms, temperatures) must be normal float32
numbers: `5e-324` is a valid float64 but 0 in float32, and `1e39` is infinite there.
"""

from __future__ import annotations

import math
import os

import numpy as np

from lstm_jax.errors import ConfigError

FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal float32, ~1.18e-38
FLOAT32_MAX = float(np.finfo(np.float32).max)  # ~3.4e38
INT32_MAX = 2**31 - 1  # step counters and scan lengths are int32
MEMORY_LIMIT_ENV = "LSTM_JAX_MEMORY_LIMIT"
MAX_GENERATE_LENGTH = 1_000_000  # characters sampled in one call: one compiled scan holds them all
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-6, 1e6  # sampling: logits / temperature stays finite in float32
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def float32_normal(x: float) -> bool:
    """True if `x` is finite and either 0 or a normal float32 (no underflow, no overflow)."""
    return math.isfinite(x) and (x == 0 or FLOAT32_TINY <= abs(x) <= FLOAT32_MAX)


def check_float32(x: float, where: str, *, positive: bool = False) -> None:
    """Raise ConfigError naming `where` unless `x` is a normal float32 (or 0, unless `positive`)."""
    if not float32_normal(x) or (positive and x <= 0):
        zero = "a positive number" if positive else "0 or a number"
        raise ConfigError(
            f"{where}: expected {zero} representable in float32 ({FLOAT32_TINY:.3g} <= |x| <= "
            f"{FLOAT32_MAX:.3g}), found {x!r}"
        )


def memory_limit() -> int:
    """Bytes a run may use: `LSTM_JAX_MEMORY_LIMIT` if set, else the machine's physical memory."""
    raw = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if raw:
        unit = raw[-1].upper() if raw[-1].isalpha() else ""
        try:
            value = float(raw[: len(raw) - len(unit)]) * _UNITS[unit]
        except (KeyError, ValueError):
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{MEMORY_LIMIT_ENV}: expected a size such as 8G or 8589934592, found {raw!r}")
        return int(value)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # not POSIX
        return 16 * 2**30


def format_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError  # unreachable


def check_memory(estimate: int, where: str, what: str) -> None:
    """Raise ConfigError naming `where` if `estimate` bytes exceed `memory_limit()`."""
    limit = memory_limit()
    if estimate > limit:
        raise ConfigError(
            f"{where}: {what} would need about {format_bytes(estimate)} of memory, more than the "
            f"{format_bytes(limit)} available (set {MEMORY_LIMIT_ENV} to change the limit)"
        )


def check_steps(steps: int, where: str) -> None:
    """Raise ConfigError unless a run's optimizer steps fit its int32 step counter."""
    if steps > INT32_MAX:
        raise ConfigError(f"{where}: expected at most {INT32_MAX} training steps in all (int32), found {steps}")


def lstm_param_count(input_size: int, hidden_size: int, num_layers: int) -> int:
    """Weights of a stacked LSTM (kernels, recurrent kernels, one bias per gate)."""
    first = 4 * hidden_size * (input_size + hidden_size + 1)
    return first + (num_layers - 1) * 4 * hidden_size * (2 * hidden_size + 1)


def _training_bytes(n_params: int, rows: int, steps: int, width: int, hidden: int, layers: int) -> int:
    """Parameters, gradients and Adam moments (x5) plus a step's activations: per row and time
    step the input `width` and, per layer, gates and states (~8 hidden), in float32."""
    return 4 * (5 * n_params + rows * steps * (width + 8 * hidden * layers))


def char_lm_bytes(
    *,
    vocab: int,
    embed: int,
    hidden: int,
    layers: int,
    seq_length: int,
    batch: int,
    eval_batch: int,
    train_windows: int,
    heldout_windows: int,
) -> int:
    """Peak bytes of training a CharLM and evaluating it (`lstm_jax.training.train_model`): the
    windows (int32, host and device), one training step (with its logits), and the held-out
    logits float32[M, T, V] padded to whole evaluation batches."""
    n_params = vocab * embed + lstm_param_count(embed, hidden, layers) + hidden * vocab + vocab
    windows = 2 * 4 * (train_windows + heldout_windows) * (seq_length + 1)
    step = _training_bytes(n_params, batch, seq_length, embed + 3 * vocab, hidden, layers)
    padded = -(-max(train_windows, heldout_windows) // eval_batch) * eval_batch
    evaluate = 4 * padded * (seq_length + 1) + 4 * eval_batch * seq_length * (2 * vocab + 8 * hidden * layers)
    logits = 4 * padded * seq_length * vocab
    return windows + step + evaluate + logits


def classifier_bytes(
    *, runs: int, patterns: int, steps: int, features: int, hidden: int, classes: int, batch: int, epochs: int
) -> int:
    """Peak bytes of training `runs` SequenceClassifiers at once (vmapped): inputs float32[R, N,
    T, F] (host and device), parameters and optimizer state, a step's activations, the per-epoch
    losses."""
    n_params = lstm_param_count(features, hidden, 1) + hidden * classes + classes
    data = 2 * 4 * runs * patterns * (steps * (features + 1) + 1)
    return data + runs * _training_bytes(n_params, batch, steps, features + classes, hidden, 1) + 4 * runs * epochs
