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

import yaml

from lstm_jax.data import count_steps, source_text, window_counts
from lstm_jax.errors import ConfigError, LstmJaxError
from lstm_pipeline.alphabet import KINDS as ALPHABET_KINDS


def _check(default=dataclasses.MISSING, *, rule=None, expect: str = ""):
    """A field with a range rule: `rule(value) -> bool`, described by `expect` in errors."""
    return field(default=default, metadata={"rule": rule, "expect": expect})


def _positive(default=dataclasses.MISSING):
    return _check(default, rule=lambda v: v >= 1, expect="an integer >= 1")


def _fraction(default=dataclasses.MISSING):
    return _check(default, rule=lambda v: 0 < v < 1, expect="a number in (0, 1)")


@dataclass(frozen=True)
class TextSource:
    """One text: either inline (`text` repeated `repeat` times joined by `separator`) or a file."""

    text: str | None = None
    repeat: int = _positive(1)
    separator: str = ""
    path: str | None = None

    def validate(self, where: str, root: Path) -> int:
        """Check the source and return its length in characters (reading the file, if any)."""
        if (self.text is None) == (self.path is None):
            raise ConfigError(
                f"{where}: expected exactly one of 'text' or 'path', found "
                f"{'both' if self.text is not None else 'neither'}"
            )
        if self.text == "":
            raise ConfigError(f"{where}.text: expected a non-empty string, found ''")
        if self.text is not None:
            return len(self.text) * self.repeat + len(self.separator) * (self.repeat - 1)
        if self.repeat != 1 or self.separator:
            raise ConfigError(f"{where}: 'repeat' and 'separator' apply to 'text' only, found them with 'path'")
        if Path(self.path).is_absolute() or Path(self.path).parts[:1] != ("texts",) or ".." in Path(self.path).parts:
            raise ConfigError(f"{where}.path: expected a file under texts/ (so DVC tracks it), found {self.path!r}")
        if not (root / self.path).is_file():
            raise ConfigError(f"{where}.path: expected an existing UTF-8 file, found no file at {self.path!r}")
        try:
            return len(source_text(None, 1, "", root / self.path))
        except LstmJaxError as exc:
            raise ConfigError(f"{where}.path: {exc}") from None


@dataclass(frozen=True)
class PrepareConfig:
    seq_length: int = _positive()
    stride: int = _positive()
    heldout_fraction: float = _fraction()
    texts: dict[str, TextSource] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    embed_dim: int = _positive()
    hidden_size: int = _positive()
    num_layers: int = _positive()
    dropout: float = _check(rule=lambda v: 0 <= v < 1, expect="a number in [0, 1)")
    recurrent_dropout: float = _check(rule=lambda v: 0 <= v < 1, expect="a number in [0, 1)")


@dataclass(frozen=True)
class OptimizerConfig:
    learning_rate: float = _check(rule=lambda v: v > 0, expect="a number > 0")
    schedule: str = _check(
        rule=lambda v: v in ("constant", "cosine", "exponential"), expect="one of 'constant', 'cosine', 'exponential'"
    )
    warmup_steps: int = _check(rule=lambda v: v >= 0, expect="an integer >= 0")
    final_lr_factor: float = _check(rule=lambda v: 0 < v <= 1, expect="a number in (0, 1]")
    clip_norm: float = _check(rule=lambda v: v > 0, expect="a number > 0")


@dataclass(frozen=True)
class TrainConfig:
    dataset: str
    seed: int = _check(rule=lambda v: 0 <= v < 2**32, expect="an integer in [0, 2**32)")
    epochs: int = _positive()
    batch_size: int = _positive()
    eval_batch_size: int = _positive()
    checkpoint_every: int = _positive()
    model: ModelConfig
    optimizer: OptimizerConfig


@dataclass(frozen=True)
class ReloadConfig:
    seed_text: str = _check(rule=lambda v: len(v) > 0, expect="a non-empty string")
    length: int = _positive()


@dataclass(frozen=True)
class TransferConfig:
    dataset: str
    forgetting_dataset: str
    seed: int = _check(rule=lambda v: 0 <= v < 2**32, expect="an integer in [0, 2**32)")
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
    scramble_seed: int = _check(rule=lambda v: 0 <= v < 2**32, expect="an integer in [0, 2**32)")
    data_seed: int = _check(rule=lambda v: 0 <= v < 2**32, expect="an integer in [0, 2**32)")
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
    seed: int = _check(rule=lambda v: 0 <= v < 2**32, expect="an integer in [0, 2**32)")
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
    reload: ReloadConfig
    transfer: TransferConfig
    alphabet: AlphabetConfig
    sequential: SequentialConfig
    evaluate: EvaluateConfig


def _describe(tp) -> str:
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    origin = typing.get_origin(tp)
    if origin is dict:
        return "a mapping"
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
            train_windows[name], _ = window_counts(
                text.validate(where, root), p.seq_length, p.stride, p.heldout_fraction
            )
        except ConfigError:
            raise
        except LstmJaxError as exc:
            raise ConfigError(f"{where}: {exc} (see prepare.seq_length, prepare.heldout_fraction)") from None
    for key, name in (
        ("train.dataset", params.train.dataset),
        ("transfer.dataset", params.transfer.dataset),
        ("transfer.forgetting_dataset", params.transfer.forgetting_dataset),
    ):
        if name not in p.texts:
            raise ConfigError(f"{source}: {key}: expected one of {sorted(p.texts)}, found {name!r}")
    for section, run in (("train", params.train), ("transfer", params.transfer)):
        n = train_windows[run.dataset]
        if run.batch_size > n:
            raise ConfigError(
                f"{source}: {section}.batch_size: expected at most the {n} training windows of "
                f"{run.dataset!r}, found {run.batch_size}"
            )
        total = count_steps(n, run.batch_size, run.epochs)
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
    for name, framing in params.alphabet.framings.items():
        n = params.alphabet.patterns_count(framing.kind)
        if framing.batch_size > n:
            raise ConfigError(
                f"{source}: alphabet.framings.{name}.batch_size: expected at most the {n} patterns "
                f"of kind {framing.kind!r}, found {framing.batch_size}"
            )
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raise ConfigError with the offending key on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_params(raw, path.parent, str(path))
