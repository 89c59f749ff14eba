"""lstm_jax: a compiled JAX/Flax LSTM library with explicit state, and the pipeline around it."""

from lstm_jax.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from lstm_jax.errors import CheckpointError, ConfigError, LstmJaxError
from lstm_jax.layers import LSTM
from lstm_jax.lstm import LSTMState, lengths_to_mask, lstm_scan, reset_state, zeros_state
from lstm_jax.models import CharLM, build_model
from lstm_jax.torch_import import from_torch
from lstm_jax.vocab import PAD_ID, UNK_ID, Vocabulary

__version__ = "0.1.0"

__all__ = [
    "LSTM", "LSTMState", "from_torch", "CharLM", "Vocabulary", "Checkpoint",
    "build_model", "load_checkpoint", "save_checkpoint",
    "lstm_scan", "lengths_to_mask", "reset_state", "zeros_state",
    "LstmJaxError", "ConfigError", "CheckpointError", "PAD_ID", "UNK_ID",
]
