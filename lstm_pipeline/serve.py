"""`lstm-pipeline classify` and `lstm-pipeline forecast`: use the models the real-data stages save
(models/classify/<dataset>, models/forecast/<series>) on new files. The scaling statistics and
the classes or columns come from the checkpoint's metadata, so a file is prepared exactly as the
training data were."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np

from lstm_jax.io import load_checkpoint, standardize
from lstm_jax.errors import ConfigError
from lstm_pipeline import forecasting, ucr
from lstm_pipeline.series import load_series


def _checkpoint(folder: Path, task: str):
    checkpoint = load_checkpoint(folder)
    meta = checkpoint.config.get("metadata", {})
    if meta.get("task") != task:
        raise ConfigError(f"{folder}: expected a model saved by the {task} stage, found task {meta.get('task')!r}")
    return checkpoint, meta


def classify_file(model_dir: Path, data_file: Path, batch_size: int = 256) -> tuple[list[str], list[str]]:
    """(predicted class per case, true labels from the file) for a .ts or long-format .csv file."""
    checkpoint, meta = _checkpoint(model_dir, "classify")
    data = ucr.load(data_file)
    features = checkpoint.model.features
    if data.x.shape[2] != features:
        raise ConfigError(f"{data_file}: expected {features} features per step (as trained), found {data.x.shape[2]}")
    x = standardize(data.x, meta["scaler"]["mean"], meta["scaler"]["std"]) * data.mask[..., None]
    apply = jax.jit(lambda p, x, m: checkpoint.model.apply({"params": p}, x, mask=m)[0].argmax(-1))
    predicted = []
    for start in range(0, len(x), batch_size):
        rows = slice(start, start + batch_size)
        predicted.extend(np.asarray(apply(checkpoint.params, x[rows], data.mask[rows])).tolist())
    return [meta["classes"][i] for i in predicted], data.labels


def forecast_file(model_dir: Path, data_file: Path | None, time_column: str | None, builtin: str | None):
    """(times of the last steps, forecast float64[H]) of the target after the series' last step."""
    checkpoint, meta = _checkpoint(model_dir, "forecast")
    source = SimpleNamespace(
        builtin=builtin,
        path=None if data_file is None else str(data_file),
        time_column=time_column,
        columns=meta["columns"],
    )
    if (builtin is None) == (data_file is None):
        raise ConfigError("forecast: expected exactly one of FILE and --builtin")
    if data_file is not None and time_column is None:
        raise ConfigError(f"{data_file}: --time-column: expected the CSV's time column")
    series = load_series(source)
    tf = forecasting.Transform(series.values, meta["difference"])
    origin = len(series.values)
    scaler = tuple(np.asarray(meta["scaler"][k], np.float32) for k in ("mean", "std"))
    one_run = jax.tree.map(lambda p: p[None], checkpoint.params)
    forecast = forecasting.model_forecasts(checkpoint.model, one_run, tf, [origin], scaler, meta["lookback"])
    return series.times[-1], forecast[0, 0]
