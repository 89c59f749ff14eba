"""Labelled multivariate sequence datasets for the classification stages: the UEA/UCR archive
files inside the sktime wheel (offline), or a user's `.ts` / long-format `.csv` files under
`series/`, as padded arrays with masks.

A long-format CSV has a header `case,label,<feature>...` and one row per step, the steps of a
case in time order (cases need not be contiguous; their first appearance fixes their order).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_jax.errors import ConfigError
from lstm_pipeline.extras import require


@dataclass(frozen=True)
class Labelled:
    """N variable-length sequences: x float32[N, T, F] right-padded with zeros, mask bool[N, T],
    labels: the N raw labels (strings)."""

    x: np.ndarray
    mask: np.ndarray
    labels: list[str]

    @property
    def lengths(self) -> np.ndarray:
        return self.mask.sum(1)


def builtin_path(name: str, split: str) -> Path:
    """The `.ts` file of archive dataset `name` ("JapaneseVowels") and split ("TRAIN"/"TEST")
    shipped in the sktime wheel."""
    sktime = require("sktime")
    path = Path(sktime.__file__).parent / "datasets" / "data" / name / f"{name}_{split}.ts"
    if not path.is_file():
        shipped = sorted(p.parent.name for p in path.parent.parent.glob("*/*_TRAIN.ts"))
        raise ConfigError(f"builtin: expected one of {shipped} (the .ts datasets in sktime's wheel), found {name!r}")
    return path


def pad(sequences: list[np.ndarray], labels: list[str], where: str) -> Labelled:
    """Right-pad float[T_i, F] sequences to the longest: `Labelled`."""
    if not sequences:
        raise ConfigError(f"{where}: expected at least one sequence, found none")
    features = {s.shape[1] for s in sequences}
    if len(features) != 1:
        raise ConfigError(f"{where}: expected the same number of features in every case, found {sorted(features)}")
    longest = max(len(s) for s in sequences)
    x = np.zeros((len(sequences), longest, features.pop()), np.float32)
    mask = np.zeros((len(sequences), longest), bool)
    for i, s in enumerate(sequences):
        if len(s) == 0 or not np.isfinite(s).all():
            raise ConfigError(f"{where}: case {i}: expected at least one step and finite values")
        x[i, : len(s)], mask[i, : len(s)] = s, True
    return Labelled(x, mask, [str(label) for label in labels])


def load_ts(path: Path) -> Labelled:
    """A `.ts` file (sktime's loader; unequal lengths allowed)."""
    datasets = require("sktime.datasets")
    try:
        frame, labels = datasets.load_from_tsfile(str(path), return_data_type="nested_univ")
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable .ts file ({str(exc).splitlines()[0]})") from None
    sequences = [
        np.stack([np.asarray(frame.iat[i, j], np.float64) for j in range(frame.shape[1])], axis=1)
        for i in range(len(frame))
    ]
    return pad(sequences, list(labels), str(path))


def load_long_csv(path: Path) -> Labelled:
    """A long-format CSV (see the module docstring)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if not header or header[:2] != ["case", "label"] or len(header) < 3:
            raise ConfigError(f"{path}: expected a header 'case,label,<feature>...', found {header}")
        steps: dict[str, list] = {}
        labels: dict[str, str] = {}
        for line, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise ConfigError(f"{path}:{line}: expected {len(header)} fields, found {len(row)}")
            case, label = row[0], row[1]
            if labels.setdefault(case, label) != label:
                raise ConfigError(f"{path}:{line}: case {case!r}: expected label {labels[case]!r}, found {label!r}")
            try:
                steps.setdefault(case, []).append([float(v) for v in row[2:]])
            except ValueError:
                raise ConfigError(f"{path}:{line}: expected numbers after case,label, found {row[2:]}") from None
    return pad([np.asarray(s) for s in steps.values()], list(labels.values()), str(path))


def load(path: Path) -> Labelled:
    if path.suffix == ".ts":
        return load_ts(path)
    if path.suffix == ".csv":
        return load_long_csv(path)
    raise ConfigError(f"{path}: expected a .ts or .csv file, found suffix {path.suffix!r}")


def encode(train_labels: list[str], test_labels: list[str], where: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(classes sorted, y_train int32[N], y_test int32[M]); a test label unseen in training is an error."""
    classes = sorted(set(train_labels))
    unseen = sorted(set(test_labels) - set(classes))
    if unseen:
        raise ConfigError(f"{where}: test labels {unseen} never occur in the training split")
    index = {c: i for i, c in enumerate(classes)}
    return (
        classes,
        np.array([index[c] for c in train_labels], np.int32),
        np.array([index[c] for c in test_labels], np.int32),
    )
