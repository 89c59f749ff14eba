"""lstm_jax: a compiled JAX/Flax LSTM library with explicit state.

Needs only jax, flax, optax and numpy. Grouped by role, each subpackage with a curated API over
private modules:

- `lstm_jax.nn`: the LSTM and GRU layers and the models built on them (CharLM,
  SequenceClassifier, Forecaster);
- `lstm_jax.recurrence`: the recurrence as pure functions (scan, fused, native kernels);
- `lstm_jax.training`: optimizer, train step, epoch loop, the many-small-models trainers,
  evaluation, generation, data parallelism, resumable checkpoints;
- `lstm_jax.io`: checkpoints, vocabularies, datasets and corpora, atomic writers, conversions.

`errors`, `portability` (same bits on every x86-64 CPU) and `limits` (bounds checked before
allocating) are public modules of their own; the most used names are re-exported here. The DVC
pipeline built on it lives in the sibling package `lstm_pipeline`; nothing here imports it.
"""

from lstm_jax.errors import ArgumentError, CheckpointError, ConfigError, DataError, LstmJaxError, TrainingDiverged
from lstm_jax.io import (
    PAD_ID,
    UNK_ID,
    Checkpoint,
    Vocabulary,
    from_keras,
    from_torch,
    load_checkpoint,
    save_checkpoint,
    to_keras,
    to_torch,
)
from lstm_jax.nn import GRU, LSTM, CharLM, Forecaster, GRUState, SequenceClassifier, build_model
from lstm_jax.recurrence import LSTMState, lengths_to_mask, lstm_scan, reset_state, zeros_state
from lstm_jax.training import (
    FitResult,
    MetricSums,
    StepMetrics,
    TrainResult,
    init_params,
    make_optimizer,
    train_model,
    train_step,
)

__version__ = "0.5.0"

__all__ = [
    "LSTM",
    "LSTMState",
    "GRU",
    "GRUState",
    "from_torch",
    "to_torch",
    "from_keras",
    "to_keras",
    "CharLM",
    "SequenceClassifier",
    "Forecaster",
    "Vocabulary",
    "Checkpoint",
    "build_model",
    "load_checkpoint",
    "save_checkpoint",
    "init_params",
    "make_optimizer",
    "train_model",
    "train_step",
    "FitResult",
    "TrainResult",
    "StepMetrics",
    "MetricSums",
    "lstm_scan",
    "lengths_to_mask",
    "reset_state",
    "zeros_state",
    "LstmJaxError",
    "ArgumentError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "TrainingDiverged",
    "PAD_ID",
    "UNK_ID",
]
