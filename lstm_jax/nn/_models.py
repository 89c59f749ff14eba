"""Models built on the LSTM layer, and the one adapter from a config dict to a module."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax.errors import ArgumentError, ConfigError
from lstm_jax.nn._forecaster import Forecaster
from lstm_jax.nn._gru import GRU
from lstm_jax.nn._layers import LSTM
from lstm_jax.io._vocab import remap_rows


CELLS = {"lstm": LSTM, "gru": GRU}


def recurrent_layer(cell: str, **kwargs) -> LSTM:
    """The recurrent layer of a model: `cell` "lstm" (LSTM) or "gru" (GRU, same API and fields)."""
    if cell not in CELLS:
        raise ConfigError(f"cell: expected one of {sorted(CELLS)}, found {cell!r}")
    return CELLS[cell](**kwargs)


class CharLM(nn.Module):
    """Character language model: Embedding -> LSTM (or GRU) -> Dense over the vocabulary.

    Call: `logits, state = model(tokens, state=None, *, lengths=None, mask=None)` with tokens
    int32[B, T]; returns logits float32[B, T, V] for the next token at every step and the final
    recurrent state (a tuple with one `LSTMState` (c, h float32[B, H]) or, for cell="gru", one
    `GRUState` (h) per layer).
    """

    vocab_size: int
    embed_dim: int = 32
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    # Mixed precision (see `LSTM`): "bfloat16" or "float16" for the embeddings and the LSTM;
    # the head computes the logits in float32. None and "float32" compute exactly as before.
    dtype: str | None = None
    param_dtype: str = "float32"
    # On the embeddings and on the top LSTM output (the non-recurrent connections, Zaremba et
    # al. 2014), so it regularises a one-layer model too; `dropout` acts between layers only.
    io_dropout: float = 0.0
    # "lstm" or "gru". The layer keeps the name `lstm` either way, so parameter trees (and
    # checkpoints written before the option existed) keep their paths.
    cell: str = "lstm"
    # The recurrence's implementation (`lstm_jax.recurrence.lstm`): "fused" (default), "scan" or, for
    # float32 LSTMs, "native" (its own C++ kernels). Checkpoints record it, so a reloaded model
    # computes the same way; older checkpoints, without the field, get "fused".
    implementation: str = "fused"

    def setup(self):
        self.embed = nn.Embed(self.vocab_size, self.embed_dim, dtype=self.dtype, param_dtype=self.param_dtype)
        self.lstm = recurrent_layer(self.cell, **self._lstm_kwargs())
        self.head = nn.Dense(self.vocab_size, dtype=jnp.float32, param_dtype=self.param_dtype)
        self.drop = nn.Dropout(self.io_dropout)

    def _lstm_kwargs(self) -> dict:
        return dict(
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            implementation=self.implementation,
        )

    def __call__(self, tokens, state=None, *, lengths=None, mask=None, deterministic=True):
        x = self.drop(self.embed(tokens), deterministic=deterministic)
        h, state = self.lstm(x, state, lengths=lengths, mask=mask, deterministic=deterministic)
        return self.head(self.drop(h, deterministic=deterministic)), state

    def initial_state(self, batch_size: int):
        """Zero recurrent state for `batch_size` rows (works on an unbound module)."""
        return recurrent_layer(self.cell, **self._lstm_kwargs(), parent=None).initial_state(batch_size)

    def example_input(self):
        """int32[1, 1]: an input of the right kind to initialise the parameters with."""
        return dummy_tokens()


class SequenceClassifier(nn.Module):
    """LSTM over a sequence, then Dense on the last layer's final h: one label per sequence.
    Bidirectional: Dense on [forward final h, backward final h] (the backward direction ends at
    each row's first real step, so it has read the whole sequence too).

    Call: `logits, state = model(x, state=None, *, lengths=None, mask=None)` with x
    float32[B, T, F]; logits float32[B, num_classes]. Masked steps leave the state untouched,
    so the final h is the one at each row's last real step, for left or right padding alike.
    """

    num_classes: int
    hidden_size: int = 32
    num_layers: int = 1
    features: int | None = None  # F; optional for training, needed to rebuild from a checkpoint
    dtype: str | None = None  # mixed precision of the LSTM, as in CharLM
    param_dtype: str = "float32"
    bidirectional: bool = False
    cell: str = "lstm"  # or "gru", as in CharLM

    def _lstm_kwargs(self) -> dict:
        return dict(
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )

    def setup(self):
        self.lstm = recurrent_layer(self.cell, **self._lstm_kwargs())
        self.head = nn.Dense(self.num_classes, dtype=jnp.float32, param_dtype=self.param_dtype)

    def __call__(self, x, state=None, *, lengths=None, mask=None, deterministic=True):
        if self.features is not None and x.shape[-1] != self.features:
            raise ArgumentError(
                f"x: expected float[B, T, {self.features}] (features={self.features}), found shape {tuple(x.shape)}"
            )
        _, state = self.lstm(x, state, lengths=lengths, mask=mask, deterministic=deterministic)
        if self.bidirectional:  # the last layer's forward and backward final h
            return self.head(jnp.concatenate([state[-2].h, state[-1].h], axis=-1)), state
        return self.head(state[-1].h), state

    def initial_state(self, batch_size: int):
        """Zero recurrent state for `batch_size` rows (works on an unbound module)."""
        return recurrent_layer(self.cell, **self._lstm_kwargs(), parent=None).initial_state(batch_size)

    def example_input(self):
        """float32[1, 1, F]: an input to initialise the parameters with (needs `features`)."""
        if self.features is None:
            raise ConfigError(
                "SequenceClassifier.features: expected the number of input features per step "
                "(it fixes the first kernel's shape), found None"
            )
        return jnp.zeros((1, 1, self.features), jnp.float32)


MODELS = {"CharLM": CharLM, "SequenceClassifier": SequenceClassifier, "Forecaster": Forecaster}


def build_model(name: str, kwargs: dict) -> nn.Module:
    """The single adapter from config to code: `build_model("CharLM", {"vocab_size": 30, ...})`."""
    if name not in MODELS:
        raise ConfigError(f"model: expected one of {sorted(MODELS)}, found {name!r}")
    cls = MODELS[name]
    fields = set(cls.__dataclass_fields__) - {"parent", "name"}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ConfigError(f"model {name}: unknown field(s) {unknown}; expected some of {sorted(fields)}")
    return cls(**kwargs)


def model_config(model: nn.Module) -> dict:
    """{"name": class name, "kwargs": fields}: enough to rebuild the module with `build_model`."""
    fields = [f for f in model.__dataclass_fields__ if f not in ("parent", "name")]
    return {"name": type(model).__name__, "kwargs": {f: getattr(model, f) for f in fields}}


def with_vocab_size(model: nn.Module, vocab_size: int) -> nn.Module:
    """The same architecture with another vocabulary size."""
    cfg = model_config(model)
    return build_model(cfg["name"], {**cfg["kwargs"], "vocab_size": vocab_size})


def remap_vocab_params(params: dict, old_vocab, new_vocab, fresh_params: dict) -> dict:
    """CharLM params for `new_vocab`: embedding rows and output columns move by token from
    `params`; tokens new to the model keep their rows from `fresh_params`; all other weights are
    copied from `params` unchanged."""
    out = jax.tree.map(np.asarray, params)
    out["embed"] = {
        "embedding": remap_rows(
            params["embed"]["embedding"], old_vocab, new_vocab, fresh_params["embed"]["embedding"], axis=0
        )
    }
    out["head"] = {
        "kernel": remap_rows(params["head"]["kernel"], old_vocab, new_vocab, fresh_params["head"]["kernel"], axis=1),
        "bias": remap_rows(params["head"]["bias"], old_vocab, new_vocab, fresh_params["head"]["bias"], axis=0),
    }
    return out


def dummy_tokens(batch: int = 1, time: int = 1):
    """int32[batch, time] zeros, for initialising parameters."""
    return jnp.zeros((batch, time), jnp.int32)
