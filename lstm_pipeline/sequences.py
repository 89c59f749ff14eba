"""Related sequence-classification datasets that differ in their input distribution.

Dataset d draws sequences of 5..15 steps of `features` Gaussian values around a mean mu_d
(a different point for every dataset); the label says whether the sequence's average
projection on a fixed direction u lies above u . mu_d. The rule's form is shared, its
threshold moves with the data: a model must keep several thresholds apart by where the inputs
lie, which is what sequential training tends to forget. Sequences are right-padded with masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SequenceSet:
    """x float32[N, T, F] (zeros where padded), y int32[N] in {0, 1}, mask bool[N, T]."""

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray


def shifted_datasets(
    n_datasets: int, *, seed: int, size: int, min_length: int, max_length: int, features: int, shift: float
) -> list[SequenceSet]:
    """`n_datasets` datasets of `size` sequences each, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=features)
    # Products as elementwise sums, not BLAS (np.linalg.norm, @): OpenBLAS picks its kernels
    # for the CPU at run time, and their rounding differs between CPUs.
    u /= np.sqrt(np.sum(u * u))
    out = []
    for d in range(n_datasets):
        mu = shift * d * rng.normal(size=features) / np.sqrt(features)
        lengths = rng.integers(min_length, max_length + 1, size=size)
        x = rng.normal(size=(size, max_length, features)) + mu
        mask = np.arange(max_length)[None, :] < lengths[:, None]
        x = np.where(mask[..., None], x, 0.0).astype(np.float32)
        score = (x * u).sum(-1).sum(1) / lengths - np.sum(u * mu)
        out.append(SequenceSet(x=x, y=(score > 0).astype(np.int32), mask=mask))
    return out


def split(ds: SequenceSet, n_train: int) -> tuple[SequenceSet, SequenceSet]:
    """The first n_train sequences for training, the rest for testing."""
    return (
        SequenceSet(ds.x[:n_train], ds.y[:n_train], ds.mask[:n_train]),
        SequenceSet(ds.x[n_train:], ds.y[n_train:], ds.mask[n_train:]),
    )


def concat(sets: list[SequenceSet]) -> SequenceSet:
    return SequenceSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in ("x", "y", "mask")))
