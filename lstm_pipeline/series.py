"""Real time series for the forecasting stages: statsmodels' bundled datasets (offline) or a
user's CSV under series/, as float64[N, F] with the target in column 0 and a time label per step."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_jax.errors import ConfigError
from lstm_pipeline.extras import require


@dataclass(frozen=True)
class Series:
    """values float64[N, F] (column 0 is the forecast target), columns: their names, times: N labels."""

    values: np.ndarray
    columns: list[str]
    times: list[str]


def _co2():
    """Mauna Loa weekly CO2 (ppm, 1958-2001), as monthly means; the few empty months interpolated."""
    frame = require("statsmodels.datasets.co2").load_pandas().data
    monthly = frame["co2"].resample("MS").mean().interpolate()
    return {"co2": monthly.to_numpy()}, [t.strftime("%Y-%m") for t in monthly.index]


def _sunspots():
    """Yearly mean sunspot numbers, 1700-2008."""
    frame = require("statsmodels.datasets.sunspots").load_pandas().data
    return {"sunspots": frame["SUNACTIVITY"].to_numpy()}, [str(int(y)) for y in frame["YEAR"]]


def _macrodata():
    """US quarterly macroeconomic series, 1959Q1-2009Q3 (real GDP, consumption, investment, ...)."""
    frame = require("statsmodels.datasets.macrodata").load_pandas().data
    times = [f"{int(y)}Q{int(q)}" for y, q in zip(frame["year"], frame["quarter"])]
    names = [c for c in frame.columns if c not in ("year", "quarter")]
    return {c: frame[c].to_numpy() for c in names}, times


BUILTINS = {"co2": (_co2, ["co2"]), "sunspots": (_sunspots, ["sunspots"]), "macrodata": (_macrodata, ["realgdp"])}


def _read_csv(path: Path, time_column: str):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or time_column not in rows[0]:
        raise ConfigError(f"{path}: expected a header with the time column {time_column!r}")
    names = [c for c in rows[0] if c != time_column]
    data = {}
    for name in names:
        try:
            data[name] = np.array([float(r[name]) for r in rows])
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: column {name!r}: expected numbers in every row") from None
    return data, [r[time_column] for r in rows], names


def load_series(source) -> Series:
    """The series a `SeriesSource` (params.yaml forecast.series.<name>) names."""
    if source.builtin is not None:
        loader, default = BUILTINS[source.builtin]
        data, times = loader()
        where = f"builtin {source.builtin}"
    else:
        data, times, default = _read_csv(Path(source.path), source.time_column)
        where = source.path
    columns = list(source.columns or default)
    missing = [c for c in columns if c not in data]
    if missing:
        raise ConfigError(f"{where}: columns {missing} not found; expected some of {sorted(data)}")
    values = np.stack([np.asarray(data[c], np.float64) for c in columns], axis=1)
    if not np.isfinite(values).all():
        raise ConfigError(f"{where}: expected finite values in columns {columns}")
    return Series(values, columns, list(times))
