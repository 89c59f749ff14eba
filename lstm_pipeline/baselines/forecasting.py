"""The forecasting baselines computed beside the LSTM on the same rolling origins: naive,
seasonal naive, and statsmodels' Holt-Winters ETS (its bits pinned: lstm_pipeline.pinned)."""

from __future__ import annotations

import numpy as np

from lstm_pipeline.extras import require


def naive(y: np.ndarray, origin: int, horizon: int) -> np.ndarray:
    return np.full(horizon, y[origin - 1])


def seasonal_naive(y: np.ndarray, origin: int, horizon: int, season: int) -> np.ndarray:
    """y[o + h] forecast by the value one season before it (or before that, beyond a season)."""
    return np.array([y[origin - season + (h % season)] for h in range(horizon)])


def ets(y: np.ndarray, origin: int, horizon: int, season: int) -> np.ndarray:
    """Holt-Winters ETS(A, A, A) (additive trend and season; no season when season == 1) fitted
    by statsmodels on y[:origin] by maximum likelihood."""
    holtwinters = require("statsmodels.tsa.holtwinters")
    seasonal = "add" if season > 1 else None
    model = holtwinters.ExponentialSmoothing(
        y[:origin], trend="add", seasonal=seasonal, seasonal_periods=season if season > 1 else None
    )
    return np.asarray(model.fit().forecast(horizon))
