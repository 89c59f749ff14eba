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
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lstm_jax.errors import ConfigError


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

    def validate(self, where: str, root: Path) -> None:
        if (self.text is None) == (self.path is None):
            raise ConfigError(f"{where}: expected exactly one of 'text' or 'path', found "
                              f"{'both' if self.text is not None else 'neither'}")
        if self.path is not None and not (root / self.path).is_file():
            raise ConfigError(f"{where}.path: expected an existing UTF-8 file, found no file at {self.path!r}")
        if self.text == "":
            raise ConfigError(f"{where}.text: expected a non-empty string, found ''")


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
    schedule: str = _check(rule=lambda v: v in ("constant", "cosine", "exponential"),
                           expect="one of 'constant', 'cosine', 'exponential'")
    warmup_steps: int = _check(rule=lambda v: v >= 0, expect="an integer >= 0")
    final_lr_factor: float = _check(rule=lambda v: 0 < v <= 1, expect="a number in (0, 1]")
    clip_norm: float = _check(rule=lambda v: v > 0, expect="a number > 0")


@dataclass(frozen=True)
class TrainConfig:
    dataset: str
    seed: int = _check(rule=lambda v: v >= 0, expect="an integer >= 0")
    epochs: int = _positive()
    batch_size: int = _positive()
    eval_batch_size: int = _positive()
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
    seed: int = _check(rule=lambda v: v >= 0, expect="an integer >= 0")
    epochs: int = _positive()
    batch_size: int = _positive()
    eval_batch_size: int = _positive()
    optimizer: OptimizerConfig


@dataclass(frozen=True)
class EvaluateConfig:
    dpi: int = _check(rule=lambda v: 30 <= v <= 600, expect="an integer in [30, 600]")


@dataclass(frozen=True)
class Params:
    prepare: PrepareConfig
    train: TrainConfig
    reload: ReloadConfig
    transfer: TransferConfig
    evaluate: EvaluateConfig


def _describe(tp) -> str:
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    origin = typing.get_origin(tp)
    if origin is dict:
        return "a mapping"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false",
            type(None): "null"}.get(tp, str(tp))


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
    ok = (
        (tp is type(None) and raw is None)
        or (tp is bool and isinstance(raw, bool))
        or (tp is int and isinstance(raw, int) and not isinstance(raw, bool))
        or (tp is float and isinstance(raw, (int, float)) and not isinstance(raw, bool))
        or (tp is str and isinstance(raw, str))
    )
    if not ok:
        raise ConfigError(f"{where}: expected {_describe(tp)}, found {raw!r}")
    return float(raw) if tp is float else raw


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
    for name, text in p.texts.items():
        if not name.isidentifier():
            raise ConfigError(f"{source}: prepare.texts.{name}: expected a name of letters, digits and _")
        text.validate(f"{source}: prepare.texts.{name}", root)
    for key, name in (("train.dataset", params.train.dataset),
                      ("transfer.dataset", params.transfer.dataset),
                      ("transfer.forgetting_dataset", params.transfer.forgetting_dataset)):
        if name not in p.texts:
            raise ConfigError(f"{source}: {key}: expected one of {sorted(p.texts)}, found {name!r}")
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
