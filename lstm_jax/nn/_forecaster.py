"""The forecasting model: an LSTM over a window of a series, then a Dense head that predicts
the next `horizon` values of every feature (its training and forecasts: `lstm_jax.training`)."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from lstm_jax.errors import ArgumentError
from lstm_jax.nn._layers import LSTM


class Forecaster(nn.Module):
    """LSTM over a window, then Dense on the last layer's final h: the next `horizon` values.

    Call: `y, state = model(x, state=None, *, deterministic=True)` with x float32[B, L, F];
    y float32[B, horizon, F] (the values of all F features at the `horizon` steps after the
    window, in the units of x) and the final LSTM state (c, h float32[B, hidden_size] per layer).
    `horizon` is H for the direct strategy and 1 for the recursive one.
    """

    features: int  # F, inputs (and outputs) per step
    horizon: int = 1
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0  # between LSTM layers, when not deterministic (needs a 'dropout' rng)

    def setup(self):
        self.lstm = LSTM(self.hidden_size, self.num_layers, dropout=self.dropout)
        self.head = nn.Dense(self.horizon * self.features, dtype=jnp.float32)

    def __call__(self, x, state=None, *, deterministic=True):
        if x.ndim != 3 or x.shape[-1] != self.features:
            raise ArgumentError(
                f"x: expected float32[B, L, {self.features}] (features={self.features}), found shape {tuple(x.shape)}"
            )
        _, state = self.lstm(x, state, deterministic=deterministic)
        y = self.head(state[-1].h)
        return y.reshape(x.shape[0], self.horizon, self.features), state

    def initial_state(self, batch_size: int):
        """Zero LSTM state for `batch_size` rows (works on an unbound module)."""
        return LSTM(self.hidden_size, self.num_layers, dropout=self.dropout, parent=None).initial_state(batch_size)

    def example_input(self):
        """float32[1, 1, F]: an input to initialise the parameters with."""
        return jnp.zeros((1, 1, self.features), jnp.float32)
