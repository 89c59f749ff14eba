"""Flax modules: the LSTM and GRU layers, the models built on them, and their initialisers.

Shapes are batch-major (`float32[B, T, F]` in, `float32[B, T, H]` out); state is explicit
(`LSTMState(c, h)`, one per layer and direction). The recurrence itself lives in
`lstm_jax.recurrence`; these modules hold the weights and call it.
"""

from lstm_jax.nn._layers import LSTM
from lstm_jax.nn._gru import GRU, GRUState
from lstm_jax.nn._forecaster import Forecaster
from lstm_jax.nn._models import CharLM, SequenceClassifier, build_model, remap_vocab_params, with_vocab_size

__all__ = [
    "CharLM",
    "Forecaster",
    "GRU",
    "GRUState",
    "LSTM",
    "SequenceClassifier",
    "build_model",
    "remap_vocab_params",
    "with_vocab_size",
]
