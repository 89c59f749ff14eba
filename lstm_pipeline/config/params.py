"""Typed schema of params.yaml and its validation.

Every section is a frozen dataclass. `load_params(path)` checks the whole file (unknown or
misspelled keys, missing keys, types, ranges, cross-references, text paths) and raises one
`ConfigError` naming the first bad key, e.g.
`params.yaml: train.epochs: expected an integer >= 1, found -1`.
Library functions never read params.yaml; stage scripts call `load_params` and pass fields on.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from lstm_jax.io import count_steps, window_counts, irregular_entries
from lstm_jax.errors import ConfigError, LstmJaxError
from lstm_jax.limits import FLOAT32_MAX, check_float32
from lstm_pipeline.config.optimizer import OptimizerConfig
from lstm_pipeline.config.schema import check as _check
from lstm_pipeline.config.schema import fraction as _fraction
from lstm_pipeline.config.schema import positive as _positive
from lstm_pipeline.config.schema import seed as _seed
from lstm_pipeline.config.tasks import ClassifyConfig, ForecastConfig
from lstm_pipeline.config.tasks import validate as validate_tasks
from lstm_pipeline.config.texts import PrepareConfig
from lstm_pipeline.config.resources import check_resources, epochs_of
from lstm_pipeline.config.yamlfile import load_yaml, short

ALPHABET_KINDS = ("one_char", "window_features", "window_steps", "variable_length")  # lstm_pipeline.alphabet's framings


@dataclass(frozen=True)
class ModelConfig:
    embed_dim: int = _positive()
    hidden_size: int = _positive()
    num_layers: int = _positive()
    dropout: float = _check(rule=lambda v: 0 <= v < 1, expect="a number in [0, 1)")
    recurrent_dropout: float = _check(rule=lambda v: 0 <= v < 1, expect="a number in [0, 1)")
    io_dropout: float = _check(0.0, rule=lambda v: 0 <= v < 1, expect="a number in [0, 1)")
    # The recurrent layer: "lstm" or "gru" (lstm_jax.GRU, torch's gate conventions).
    cell: str = _check("lstm", rule=lambda v: v in ("lstm", "gru"), expect="one of 'lstm', 'gru'")
    # Mixed precision: "bfloat16"/"float16" run the embeddings and the recurrence in that dtype
    # (parameters, c, the logits and the weight gradients stay float32); "float32" is the
    # unmixed computation, bit for bit.
    dtype: str = _check(
        "float32",
        rule=lambda v: v in ("float32", "bfloat16", "float16"),
        expect="one of 'float32', 'bfloat16', 'float16'",
    )
    # The recurrence: "fused" (XLA) or "native" (the library's C++ kernels: float32 LSTMs only,
    # faster, and needs the extension built by `pip install`; see lstm_jax.recurrence).
    implementation: str = _check("fused", rule=lambda v: v in ("fused", "native"), expect="one of 'fused', 'native'")


@dataclass(frozen=True)
class TrainConfig:
    dataset: str
    seed: int = _seed()
    epochs: int = _positive()
    batch_size: int = _positive()
    eval_batch_size: int = _positive()
    checkpoint_every: int = _positive()
    model: ModelConfig
    optimizer: OptimizerConfig
    # Early stopping: stop after this many epochs without a better held-out loss (None: never).
    # The saved model is always the best epoch's.
    patience: int | None = _check(None, rule=lambda v: v >= 1, expect="an integer >= 1")
    # A budget in optimizer steps, whatever the text's size: it sets the number of epochs (at
    # least `epochs`), so a 35 KB text gets as many updates as a 465 KB one (None: `epochs`).
    steps: int | None = _check(None, rule=lambda v: v >= 1, expect="an integer >= 1")
    # Held-out windows are scored after reading this many windows before them (0: each from a
    # zero state), so every character has context, as in a text read whole (`evaluation.with_context`).
    heldout_context: int = _check(0, rule=lambda v: v >= 0, expect="an integer >= 0")

    def epochs_for(self, n_windows: int) -> int:
        """Epochs of a run on n_windows training windows: `epochs`, or enough for `steps`."""
        per_epoch = max(n_windows // self.batch_size, 1)
        return self.epochs if self.steps is None else max(self.epochs, -(-self.steps // per_epoch))


@dataclass(frozen=True)
class BaselineConfig:
    """The Kneser-Ney character n-gram beside the char model (`lstm_pipeline.baselines.kneser_ney`)."""

    # The orders tried; the one that scores best on the last `validation_fraction` of the
    # training characters (fitted on the rest) is refitted on all of them and reported.
    orders: list[int] = field(default_factory=lambda: [5])
    validation_fraction: float = _fraction(0.1)


@dataclass(frozen=True)
class ReloadConfig:
    seed_text: str = _check(rule=lambda v: len(v) > 0, expect="a non-empty string")
    length: int = _positive()


@dataclass(frozen=True)
class TransferConfig:
    dataset: str
    forgetting_dataset: str
    seed: int = _seed()
    epochs: int = _positive()
    batch_size: int = _positive()
    eval_batch_size: int = _positive()
    checkpoint_every: int = _positive()
    optimizer: OptimizerConfig


@dataclass(frozen=True)
class FramingConfig:
    """One alphabet experiment: which patterns, model size and training recipe."""

    kind: str = _check(rule=lambda v: v in ALPHABET_KINDS, expect=f"one of {list(ALPHABET_KINDS)}")
    hidden_size: int = _positive()
    epochs: int = _positive()
    batch_size: int = _positive()
    shuffle: bool = False
    stateful: bool = False


@dataclass(frozen=True)
class AlphabetConfig:
    seeds: int = _positive()
    scramble_seed: int = _seed()
    data_seed: int = _seed()
    learning_rate: float = _check(rule=lambda v: v > 0, expect="a number > 0")
    window: int = _check(rule=lambda v: 1 <= v <= 24, expect="an integer in [1, 24]")
    samples: int = _positive()
    max_length: int = _check(rule=lambda v: 1 <= v <= 25, expect="an integer in [1, 25]")
    framings: dict[str, FramingConfig] = field(default_factory=dict)

    def patterns_count(self, kind: str) -> int:
        return {
            "one_char": 25,
            "window_features": 26 - self.window,
            "window_steps": 26 - self.window,
            "variable_length": self.samples,
        }[kind]


@dataclass(frozen=True)
class SequentialConfig:
    """Several related datasets trained in sequence (and jointly, as the upper bound)."""

    datasets: int = _check(rule=lambda v: v >= 2, expect="an integer >= 2")
    seed: int = _seed()
    train_size: int = _positive()
    test_size: int = _positive()
    min_length: int = _positive()
    max_length: int = _positive()
    features: int = _positive()
    shift: float = _check(rule=lambda v: v >= 0, expect="a number >= 0")
    hidden_size: int = _positive()
    epochs: int = _positive()
    batch_size: int = _positive()
    learning_rate: float = _check(rule=lambda v: v > 0, expect="a number > 0")


@dataclass(frozen=True)
class EvaluateConfig:
    dpi: int = _check(rule=lambda v: 30 <= v <= 600, expect="an integer in [30, 600]")


@dataclass(frozen=True)
class Params:
    prepare: PrepareConfig
    train: TrainConfig
    baseline: BaselineConfig
    tutorial: TrainConfig
    reload: ReloadConfig
    transfer: TransferConfig
    alphabet: AlphabetConfig
    sequential: SequentialConfig
    classify: ClassifyConfig
    forecast: ForecastConfig
    evaluate: EvaluateConfig


def _describe(tp) -> str:
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    origin = typing.get_origin(tp)
    if origin is dict:
        return "a mapping"
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])[2:]}s"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false", type(None): "null"}.get(
        tp, str(tp)
    )


def _parse(tp, raw, where: str):
    """Convert `raw` (from YAML) to type `tp`, raising ConfigError naming `where` on mismatch."""
    if dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, raw, where)
    origin = typing.get_origin(tp)
    if origin is dict:
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping, found {raw!r}")
        _, value_tp = typing.get_args(tp)
        return {str(k): _parse(value_tp, v, f"{where}.{k}") for k, v in raw.items()}
    if origin is list:
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"{where}: expected a non-empty list, found {raw!r}")
        (item_tp,) = typing.get_args(tp)
        return [_parse(item_tp, v, f"{where}[{i}]") for i, v in enumerate(raw)]
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _parse(arg, raw, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {_describe(tp)}, found {raw!r}")
    if tp is float and isinstance(raw, str):
        try:  # YAML 1.1 reads 3e-3 (no dot) as a string
            raw = float(raw)
        except ValueError:
            pass
    ok = (
        (tp is type(None) and raw is None)
        or (tp is bool and isinstance(raw, bool))
        or (tp is int and isinstance(raw, int) and not isinstance(raw, bool))
        or (tp is float and isinstance(raw, (int, float)) and not isinstance(raw, bool))
        or (tp is str and isinstance(raw, str))
    )
    if not ok:
        raise ConfigError(f"{where}: expected {_describe(tp)}, found {raw!r}")
    if tp is float:
        if not math.isfinite(raw):
            raise ConfigError(f"{where}: expected a finite number, found {raw!r}")
        return float(raw)
    return raw


def _parse_dataclass(cls, raw, where: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, found {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; expected one of {sorted(fields)}"
            raise ConfigError(f"{where}.{key}: unknown key{hint}")
    values = {}
    for name, f in fields.items():
        key = f"{where}.{name}"
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}: missing; expected {_describe(hints[name])}")
            continue
        value = _parse(hints[name], raw[name], key)
        rule = f.metadata.get("rule")
        if rule is not None and value is not None and not rule(value):
            raise ConfigError(f"{key}: expected {f.metadata['expect']}, found {raw[name]!r}")
        values[name] = value
    return cls(**values)


def parse_params(raw, root: Path = Path("."), source: str = "params.yaml") -> Params:
    """Validate a params mapping as read from YAML; `root` resolves text paths."""
    try:
        params = _parse_dataclass(Params, raw, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {str(exc).lstrip('.')}") from None
    p = params.prepare
    if not p.texts:
        raise ConfigError(f"{source}: prepare.texts: expected at least one text, found none")
    train_windows = {}
    for name, text in p.texts.items():
        where = f"{source}: prepare.texts.{name}"
        if not name.isidentifier():
            raise ConfigError(f"{where}: expected a name of letters, digits and _")
        try:
            if text.stride is not None and text.stride > p.seq_length:
                raise ConfigError(
                    f"{where}.stride: expected at most prepare.seq_length ({p.seq_length}), found {text.stride}"
                )
            train_windows[name], _ = window_counts(
                text.validate(where, root), p.seq_length, p.stride_of(name), p.heldout_fraction
            )
        except ConfigError:
            raise
        except LstmJaxError as exc:
            raise ConfigError(f"{where}: {exc} (see prepare.seq_length, prepare.heldout_fraction)") from None
    if p.stride is not None and p.stride > p.seq_length:
        raise ConfigError(
            f"{source}: prepare.stride: expected at most prepare.seq_length ({p.seq_length}), found {p.stride}"
        )
    bad_orders = [o for o in params.baseline.orders if not 1 <= o <= 12]
    if bad_orders:
        raise ConfigError(f"{source}: baseline.orders: expected integers in [1, 12], found {bad_orders[0]}")
    for key, name in (
        ("train.dataset", params.train.dataset),
        ("tutorial.dataset", params.tutorial.dataset),
        ("transfer.dataset", params.transfer.dataset),
        ("transfer.forgetting_dataset", params.transfer.forgetting_dataset),
    ):
        if name not in p.texts:
            raise ConfigError(f"{source}: {key}: expected one of {sorted(p.texts)}, found {name!r}")
    for section, model in (("train", params.train.model), ("tutorial", params.tutorial.model)):
        if model.implementation == "native" and (model.cell, model.dtype) != ("lstm", "float32"):
            raise ConfigError(
                f"{source}: {section}.model.implementation: expected 'fused' with cell {model.cell!r} and "
                f"dtype {model.dtype!r} ('native' runs float32 LSTMs only), found 'native'"
            )
    for section, run in (("train", params.train), ("tutorial", params.tutorial), ("transfer", params.transfer)):
        n = train_windows[run.dataset]
        if run.batch_size > n:
            raise ConfigError(
                f"{source}: {section}.batch_size: expected at most the {n} training windows of "
                f"{run.dataset!r}, found {run.batch_size}"
            )
        total = count_steps(n, run.batch_size, epochs_of(run)(n))
        if run.optimizer.warmup_steps > total:
            raise ConfigError(
                f"{source}: {section}.optimizer.warmup_steps: expected at most the {total} "
                f"training steps, found {run.optimizer.warmup_steps}"
            )
    seq = params.sequential
    if seq.min_length > seq.max_length:
        raise ConfigError(
            f"{source}: sequential.min_length: expected at most sequential.max_length "
            f"({seq.max_length}), found {seq.min_length}"
        )
    if seq.batch_size > seq.train_size:
        raise ConfigError(
            f"{source}: sequential.batch_size: expected at most sequential.train_size "
            f"({seq.train_size}), found {seq.batch_size}"
        )
    alpha = params.alphabet
    if not alpha.framings:
        raise ConfigError(f"{source}: alphabet.framings: expected at least one framing, found none")
    for name, framing in alpha.framings.items():
        if not (name.isascii() and name.isidentifier()):
            raise ConfigError(
                f"{source}: alphabet.framings: expected keys of ASCII letters, digits and _ (they name "
                f"output files), found {short(repr(name), 80)}"
            )
        n = alpha.patterns_count(framing.kind)
        if framing.batch_size > n:
            raise ConfigError(
                f"{source}: alphabet.framings.{name}.batch_size: expected at most the {n} patterns "
                f"of kind {framing.kind!r}, found {framing.batch_size}"
            )
    runs = [s for s in ("train", "tutorial", "transfer") if hasattr(getattr(params, s, None), "optimizer")]
    positive = [f"{s}.optimizer.{k}" for s in runs for k in ("learning_rate", "clip_norm")]
    for key in [*positive, "alphabet.learning_rate", "sequential.learning_rate", "sequential.shift"]:
        section, *rest = key.split(".")
        value = getattr(getattr(params, section), rest[0])
        value = getattr(value, rest[1]) if len(rest) > 1 else value
        check_float32(value, f"{source}: {key}", positive=key != "sequential.shift")
    bound = FLOAT32_MAX / 10 / max(1, seq.datasets - 1)  # the last dataset's inputs ~ shift x (datasets - 1) x N(0, 1)
    if seq.shift > bound:
        raise ConfigError(
            f"{source}: sequential.shift: expected at most {bound:.3g}, so that the inputs of all "
            f"{seq.datasets} datasets fit float32, found {seq.shift!r}"
        )
    validate_tasks(params.classify, params.forecast, source, root)
    check_resources(params, source, root)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raise ConfigError with the offending key on any problem.

    Text paths resolve under the file's folder, whose texts/ may hold only regular files and
    folders (no FIFO, device or symlink leading outside it)."""
    path = Path(path)
    raw = load_yaml(path, "params file")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (prepare, train, ...), found {short(repr(raw), 80)}")
    root = path.parent
    bad = irregular_entries(root / "texts", root)
    if bad:
        raise ConfigError(f"{path}: texts/: expected regular files inside the repository, found {short(bad[0])}")
    try:
        return parse_params(raw, root, str(path))
    except ConfigError as exc:
        raise ConfigError(short(str(exc), 1000)) from None
