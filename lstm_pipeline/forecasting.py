"""Rolling-origin evaluation of forecasters on one series (target in column 0).

Origins are y indices: the forecast from origin o covers y[o : o + H] and may use y[:o] only.
The last `origins` origins, one step apart, end the series; everything before the first one is
the training part (scaling statistics, windows, validation). With `difference`, models work on
d[t] = y[t] - y[t-1] and their forecasts are summed back onto y[o - 1].
"""

from __future__ import annotations

import jax
import numpy as np

from lstm_jax.errors import ConfigError
from lstm_jax.training import direct_forecast, recursive_forecast
from lstm_jax.io import standardize, unstandardize


def test_origins(n: int, horizon: int, origins: int) -> np.ndarray:
    """int[origins]: the last `origins` origins of a series of n steps, one step apart."""
    return np.arange(n - horizon - origins + 1, n - horizon + 1)


class Transform:
    """y float64[N, F] <-> the modelled series s (y itself, or its first differences)."""

    def __init__(self, y: np.ndarray, difference: bool):
        self.y, self.offset = y, int(difference)
        self.s = y[1:] - y[:-1] if difference else y  # s[i] belongs to y index i + offset

    def context(self, origin: int, lookback: int) -> np.ndarray:
        """float64[L, F]: the modelled values of the `lookback` steps before `origin`."""
        start = origin - self.offset - lookback
        if start < 0:
            raise ConfigError(f"origin {origin}: needs {lookback + self.offset} earlier steps (lookback)")
        return self.s[start : origin - self.offset]

    def to_target(self, origin: int, forecast: np.ndarray) -> np.ndarray:
        """float64[..., H]: target-column forecasts (modelled units, column 0) back in y's units."""
        return self.y[origin - 1, 0] + np.cumsum(forecast, axis=-1) if self.offset else forecast


def model_forecasts(model, params, tf: Transform, origins, scaler, lookback: int, horizon: int | None = None):
    """float64[R, O, H]: the target forecasts (y units) of R runs from each origin.

    params: a Forecaster's parameters stacked over R runs (leading axis); scaler: (mean, std)
    the model was trained with. horizon None: direct (the model's own H outputs); an int:
    recursive, one step at a time fed back for `horizon` steps. The stage and
    `lstm-pipeline forecast` both run this chain: context -> scale -> model -> unscale -> y.
    """
    mean, std = scaler
    context = standardize(np.stack([tf.context(o, lookback) for o in origins]), mean, std)

    def run(p, c):
        return direct_forecast(model, p, c) if horizon is None else recursive_forecast(model, p, c, horizon)

    scaled = np.asarray(jax.jit(jax.vmap(run, in_axes=(0, None)))(params, context))  # [R, O, H, F]
    modelled = unstandardize(scaled, mean, std)[..., 0].astype(np.float64)
    return np.stack([np.stack([tf.to_target(o, r[i]) for i, o in enumerate(origins)]) for r in modelled])


def interval_halfwidths(errors: np.ndarray, coverage: float) -> np.ndarray:
    """float[H]: split-conformal half-widths from absolute validation errors float[V, H]: the
    ceil((V + 1) * coverage)-th smallest error at each horizon step (the largest when V is small)."""
    errors = np.sort(np.abs(errors), axis=0)
    rank = min(len(errors), int(np.ceil((len(errors) + 1) * coverage))) - 1
    return errors[rank]
