"""params.yaml sections of the real-data stages: `classify` (labelled sequence datasets) and
`forecast` (time series). Parsed by `lstm_pipeline.config.params` like every other section."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lstm_jax.errors import ConfigError
from lstm_pipeline.config.optimizer import OptimizerConfig
from lstm_pipeline.config.schema import check, fraction, positive, seed

SERIES_ROOT = "series"  # user files live here (a dependency of the stages that read them)
FORECAST_BUILTINS = ("co2", "sunspots", "macrodata")


def _user_file(value: str | None, where: str, root: Path, suffixes: tuple[str, ...]) -> None:
    if value is None:
        return
    path = Path(value)
    if path.is_absolute() or ".." in path.parts or path.parts[:1] != (SERIES_ROOT,):
        raise ConfigError(f"{where}: expected a path under {SERIES_ROOT}/, found {value!r}")
    if path.suffix not in suffixes:
        raise ConfigError(f"{where}: expected a {' or '.join(suffixes)} file, found {value!r}")
    if not (root / path).is_file():
        raise ConfigError(f"{where}: no such file {value!r}")


@dataclass(frozen=True, kw_only=True)
class ClassDataset:
    """A labelled dataset: `builtin` (a UEA/UCR name shipped in sktime's wheel) or `train` and
    `test` files (.ts or long-format .csv under series/)."""

    builtin: str | None = None
    train: str | None = None
    test: str | None = None
    epochs: int | None = positive(None)  # overrides classify.epochs for this dataset

    def validate(self, where: str, root: Path) -> None:
        if (self.builtin is None) == (self.train is None and self.test is None) or (self.train is None) != (
            self.test is None
        ):
            raise ConfigError(f"{where}: expected either builtin or both train and test, found {self}")
        for key in ("train", "test"):
            _user_file(getattr(self, key), f"{where}.{key}", root, (".ts", ".csv"))


@dataclass(frozen=True, kw_only=True)
class ClassifyConfig:
    """LSTM sequence classifiers over `seeds` seeds at once, beside 1-NN DTW and a logistic
    regression on summary features."""

    seeds: int = positive()
    seed: int = seed()
    validation_fraction: float = fraction()  # of the training cases, for best-epoch selection
    hidden_size: int = positive()
    num_layers: int = positive()
    bidirectional: bool = False
    epochs: int = positive()
    batch_size: int = positive()
    optimizer: OptimizerConfig  # built as the char model's is (schedule, clipping, weight decay)
    datasets: dict[str, ClassDataset] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class SeriesSource:
    """A series: `builtin` (one of FORECAST_BUILTINS, from statsmodels) or `path`, a CSV under
    series/ with a `time_column` and numeric columns. `columns` picks the inputs, the target first
    (default: the builtin's own). `season` is the seasonal period (1: none), `difference` models
    first differences (then sums them back), for series with a trend."""

    builtin: str | None = None
    path: str | None = None
    time_column: str | None = None
    columns: list[str] | None = None
    season: int = positive()
    horizon: int = positive()
    lookback: int = positive()
    difference: bool = False
    epochs: int | None = positive(None)  # overrides forecast.epochs for this series

    def validate(self, where: str, root: Path) -> None:
        if (self.builtin is None) == (self.path is None):
            raise ConfigError(f"{where}: expected exactly one of builtin and path, found {self}")
        if self.builtin is not None and self.builtin not in FORECAST_BUILTINS:
            raise ConfigError(f"{where}.builtin: expected one of {list(FORECAST_BUILTINS)}, found {self.builtin!r}")
        if self.path is not None and self.time_column is None:
            raise ConfigError(f"{where}.time_column: expected the CSV's time column, found none")
        _user_file(self.path, f"{where}.path", root, (".csv",))


@dataclass(frozen=True, kw_only=True)
class ForecastConfig:
    """LSTM forecasters (direct and recursive) over `seeds` seeds, scored on the last `origins`
    rolling origins of each series beside naive, seasonal naive and ETS."""

    seeds: int = positive()
    seed: int = seed()
    origins: int = positive()
    validation_fraction: float = fraction()  # of the training windows, for best-epoch selection
    interval: float = fraction()  # coverage of the prediction intervals
    hidden_size: int = positive()
    num_layers: int = positive()
    epochs: int = positive()
    batch_size: int = positive()
    optimizer: OptimizerConfig  # built as the char model's is (schedule, clipping, weight decay)
    loss: str = check(rule=lambda v: v in ("mse", "mae"), expect="'mse' or 'mae'")
    series: dict[str, SeriesSource] = field(default_factory=dict)


def validate(classify: ClassifyConfig, forecast: ForecastConfig, source: str, root: Path) -> None:
    """Cross-field checks after parsing (names, exactly one source, files under series/)."""
    for section, entries in (("classify.datasets", classify.datasets), ("forecast.series", forecast.series)):
        for name, entry in entries.items():
            where = f"{source}: {section}.{name}"
            if not name.isidentifier():
                raise ConfigError(f"{where}: expected a name of letters, digits and _")
            entry.validate(where, root)
