"""lstm_jax: a compiled JAX/Flax LSTM library with explicit state.

Needs only jax, flax, optax and numpy. The DVC pipeline built on it lives in the sibling
package `lstm_pipeline`; nothing here imports it.
"""

from lstm_jax.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from lstm_jax.errors import ArgumentError, CheckpointError, ConfigError, DataError, LstmJaxError, TrainingDiverged
from lstm_jax.gru import GRU, GRUState
from lstm_jax.keras_convert import from_keras, to_keras
from lstm_jax.layers import LSTM
from lstm_jax.ngram import KneserNey
from lstm_jax.lstm import LSTMState, lengths_to_mask, lstm_scan, reset_state, zeros_state
from lstm_jax.metrics import MetricSums
from lstm_jax.models import CharLM, SequenceClassifier, build_model
from lstm_jax.torch_import import from_torch, to_torch
from lstm_jax.fit import FitResult, TrainResult, train_model
from lstm_jax.train import StepMetrics, init_params, make_optimizer, train_step
from lstm_jax.vocab import PAD_ID, UNK_ID, Vocabulary

__version__ = "0.4.0"

__all__ = [
    "LSTM",
    "LSTMState",
    "GRU",
    "GRUState",
    "KneserNey",
    "from_torch",
    "to_torch",
    "from_keras",
    "to_keras",
    "CharLM",
    "SequenceClassifier",
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
