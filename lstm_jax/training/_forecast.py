"""Time-series forecasting with an LSTM: the model, sliding windows, a many-seed trainer that
keeps the best epoch (`make_many_runs_trainer`), direct and recursive multi-step forecasts, and the M4 error measures.

A series float[N, F] (F features per step, standardised with `lstm_jax.io` fitted on the
training part) is cut by `windows` into inputs x float32[M, L, F] (L = lookback) and targets
y float32[M, H, F], the H steps that follow each window. `Forecaster` (`lstm_jax.nn`) reads x and predicts the
next `horizon` values of all F features. Two multi-step strategies (Ben Taieb, Bontempi, Atiya &
Sorjamaa 2012, "A review and comparison of strategies for multi-step ahead time series
forecasting based on the NN5 forecasting competition", Expert Syst. Appl. 39(8)):

- direct: a model with horizon=H predicts all H steps at once (`direct_forecast`);
- recursive: a one-step model (horizon=1) is applied H times, each prediction appended to the
  window and the oldest step dropped (`recursive_forecast`).

`smape` and `mase` are the M4 competition's measures (Makridakis, Spiliotis & Assimakopoulos
2018, "The M4 Competition: Results, findings, conclusion and way forward", IJF 34(4); 2020,
"The M4 Competition: 100,000 time series and 61 forecasting methods", IJF 36(1); MASE from
Hyndman & Koehler 2006, "Another look at measures of forecast accuracy", IJF 22(4)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lstm_jax.errors import ArgumentError
from lstm_jax.nn._forecaster import Forecaster
from lstm_jax.training._many_runs import make_many_runs_trainer, optimizer_or_adam


def windows(series, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window of a series float[N, F]: x float32[M, L, F] with x[i] = series[i : i + L] and
    y float32[M, H, F] with y[i] = series[i + L : i + L + H], M = N - L - H + 1."""
    series = np.asarray(series, np.float32)
    if series.ndim != 2:
        raise ArgumentError(f"series: expected float[N, F], found shape {series.shape}")
    for name, value in (("lookback", lookback), ("horizon", horizon)):
        if int(value) != value or value < 1:
            raise ArgumentError(f"{name}: expected an integer >= 1, found {value!r}")
    m = series.shape[0] - lookback - horizon + 1
    if m < 1:
        raise ArgumentError(
            f"series: expected at least lookback + horizon = {lookback + horizon} steps, found {series.shape[0]}"
        )
    x = np.stack([series[i : i + lookback] for i in range(m)])
    y = np.stack([series[i + lookback : i + lookback + horizon] for i in range(m)])
    return x, y


_LOSSES = {
    "mse": lambda pred, y: jnp.mean(jnp.square(pred - y)),
    "mae": lambda pred, y: jnp.mean(jnp.abs(pred - y)),
}


def _check_split(model, name: str, x, y) -> None:
    expected = (x.shape[0], model.horizon, model.features)
    if x.ndim != 3 or x.shape[-1] != model.features:
        raise ArgumentError(f"x_{name}: expected float32[M, L, {model.features}], found shape {tuple(x.shape)}")
    if tuple(y.shape) != expected:
        raise ArgumentError(
            f"y_{name}: expected float32{list(expected)} ([M, model.horizon, F]), found shape {tuple(y.shape)}"
        )


def make_forecast_trainer(
    model: Forecaster,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float | None = None,
    tx: optax.GradientTransformation | None = None,
    loss="mse",
):
    """A `(keys key[R], x_train float32[N, L, F], y_train float32[N, model.horizon, F],
    x_val float32[V, L, F], y_val float32[V, model.horizon, F]) -> dict` trainer, one run per
    key (the data are shared by all runs): `make_many_runs_trainer` on the `loss` ("mse" or
    "mae"), with dropout between LSTM layers when the model has it.

    The optimizer is `tx` (e.g. `make_optimizer`'s: schedule, clipping, weight decay; its
    schedule counts `epochs * (N // batch_size)` steps), or Adam at a constant `learning_rate`.
    Each epoch takes N // batch_size shuffled mini-batches (batch_size capped at N); after each,
    the validation loss is computed and each run keeps the parameters of its lowest epoch.
    Returns {"params": best params with leading axis R, "best_epoch": int32[R] (1-based),
    "train_loss": float32[R, epochs] (mean over the epoch's steps), "val_loss": float32[R, epochs]}.
    """
    if loss not in _LOSSES:
        raise ArgumentError(f"loss: expected one of {sorted(_LOSSES)}, found {loss!r}")
    loss_fn = _LOSSES[loss]

    def objective(params, batch, rng):
        x, y = batch
        pred, _ = model.apply({"params": params}, x, deterministic=False, rngs={"dropout": rng})
        return loss_fn(pred, y)

    trainer = make_many_runs_trainer(
        init=lambda key, train: model.init(key, train[0][:1])["params"],
        loss=objective,
        validate=lambda params, val: (loss_fn(model.apply({"params": params}, val[0])[0], val[1]), {}),
        tx=optimizer_or_adam(tx, learning_rate),
        epochs=epochs,
        batch_size=batch_size,
    )

    def train(keys, x, y, x_val, y_val):
        _check_split(model, "train", x, y)
        _check_split(model, "val", x_val, y_val)
        return trainer(keys, (x, y), (x_val, y_val))

    return train


def _check_context(model, context) -> None:
    if context.ndim != 3:
        raise ArgumentError(f"context: expected float32[B, L, {model.features}], found shape {tuple(context.shape)}")


def direct_forecast(model: Forecaster, params, context) -> jax.Array:
    """The next model.horizon = H steps after each window: context float32[B, L, F] ->
    float32[B, H, F]. params: one run's parameters (vmap over runs yourself). Jittable."""
    context = jnp.asarray(context, jnp.float32)
    _check_context(model, context)
    return model.apply({"params": params}, context)[0]


def recursive_forecast(model: Forecaster, params, context, horizon: int) -> jax.Array:
    """`horizon` steps by iterating a one-step model (model.horizon == 1): each prediction is
    appended to the window and its oldest step dropped, so the window keeps its length L.
    context float32[B, L, F] -> float32[B, horizon, F]. One run's params; jittable."""
    if model.horizon != 1:
        raise ArgumentError(f"model.horizon: expected 1 (a one-step model) to iterate, found {model.horizon}")
    if int(horizon) != horizon or horizon < 1:
        raise ArgumentError(f"horizon: expected an integer >= 1, found {horizon!r}")
    context = jnp.asarray(context, jnp.float32)
    _check_context(model, context)

    def step(window, _):
        nxt = model.apply({"params": params}, window)[0]  # [B, 1, F]
        return jnp.concatenate([window[:, 1:], nxt], axis=1), nxt[:, 0]

    _, preds = jax.lax.scan(step, context, None, length=int(horizon))
    return jnp.swapaxes(preds, 0, 1)


def _pairs(actual, forecast) -> tuple[np.ndarray, np.ndarray]:
    a, f = np.asarray(actual, np.float64), np.asarray(forecast, np.float64)
    if a.ndim not in (1, 2) or a.shape[-1] == 0:
        raise ArgumentError(f"actual: expected float[h] or float[origins, h] with h >= 1, found shape {a.shape}")
    if f.shape != a.shape:
        raise ArgumentError(f"forecast: expected the shape of actual {a.shape}, found {f.shape}")
    return np.atleast_2d(a), np.atleast_2d(f)


def smape(actual, forecast) -> float:
    """M4's symmetric MAPE in percent: 200/h * sum_t |y_t - yhat_t| / (|y_t| + |yhat_t|) over the
    horizon, for actual, forecast float[h]; for float[origins, h], the mean over origins.
    A step where y_t = yhat_t = 0 adds 0 (M4's series are positive, so it never arises there)."""
    a, f = _pairs(actual, forecast)
    num, den = np.abs(a - f), np.abs(a) + np.abs(f)
    terms = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return float(np.mean(200.0 * terms.mean(axis=1)))


def mase(actual, forecast, insample, season: int = 1) -> float:
    """M4's mean absolute scaled error: mean_t |y_t - yhat_t| over the horizon divided by the
    in-sample mean absolute seasonal difference 1/(n - m) sum_{t=m+1..n} |y_t - y_{t-m}| (m =
    season; 1 for non-seasonal data). actual, forecast float[h] with insample float[n]; or
    float[origins, h] with insample float[origins, n] or a list of 1-D arrays (one history per
    origin, lengths may differ), giving the mean over origins."""
    a, f = _pairs(actual, forecast)
    if int(season) != season or season < 1:
        raise ArgumentError(f"season: expected an integer >= 1, found {season!r}")
    single = np.ndim(actual) == 1
    histories = [insample] if single else list(insample)
    if len(histories) != a.shape[0]:
        raise ArgumentError(f"insample: expected {a.shape[0]} histories (one per origin), found {len(histories)}")
    values = []
    for i, hist in enumerate(histories):
        hist = np.asarray(hist, np.float64)
        if hist.ndim != 1 or hist.shape[0] <= season:
            raise ArgumentError(
                f"insample[{i}]: expected float[n] with n > season = {season}, found shape {hist.shape}"
            )
        scale = np.mean(np.abs(hist[season:] - hist[:-season]))
        if not scale > 0:
            raise ArgumentError(f"insample[{i}]: expected a non-zero seasonal difference (m={season}), found {scale}")
        values.append(np.mean(np.abs(a[i] - f[i])) / scale)
    return float(np.mean(values))
