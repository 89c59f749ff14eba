"""Per-feature standardisation (z-scores) for real-valued sequences, e.g. before forecasting.

Fit it on the training split only: `mean, std = fit_standardizer(train)`, then
`standardize(x, mean, std)` for every split and `unstandardize(prediction, mean, std)` to bring
forecasts back to the data's units. Statistics that saw the validation or test part would leak
it into training.
"""

from __future__ import annotations

import jax
import numpy as np

from lstm_jax.errors import ArgumentError


def fit_standardizer(x, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (population, ddof=0) of x float[..., T, F] (or
    float[N, F]) over the steps where mask bool[..., T] (x.shape[:-1]) is True; all steps if None.

    Computed in float64 with NumPy and then cast, so the result does not depend on the order of a
    vectorised sum. A feature that is constant over the valid steps gets std 1.0 (not 0), so
    standardising it gives zeros instead of NaN. Returns (mean float32[F], std float32[F]).
    Fit it on the training split only.
    """
    x = np.asarray(x, np.float64)
    if x.ndim < 2:
        raise ArgumentError(f"x: expected float[..., T, F] (at least 2 axes), found shape {x.shape}")
    rows = x.reshape(-1, x.shape[-1])
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != x.shape[:-1]:
            raise ArgumentError(f"mask: expected bool{list(x.shape[:-1])} (x's shape without F), found {mask.shape}")
        rows = rows[mask.reshape(-1).astype(bool)]
    if rows.shape[0] == 0:
        raise ArgumentError(f"x: expected at least one valid step to fit on, found none (x shape {x.shape})")
    if not np.all(np.isfinite(rows)):
        bad = int(np.argmax(~np.all(np.isfinite(rows), axis=0)))
        raise ArgumentError(f"x: expected finite values at the valid steps, found NaN or inf in feature {bad}")
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    std = np.where(np.ptp(rows, axis=0) == 0, 1.0, std)  # exactly constant -> 1, not a rounding residue
    return mean.astype(np.float32), std.astype(np.float32)


def _check_stats(x, mean, std) -> None:
    features = x.shape[-1] if x.ndim else None
    for name, value in (("mean", mean), ("std", std)):
        if np.shape(value) != (features,):
            raise ArgumentError(f"{name}: expected float32[{features}] (x's last axis), found shape {np.shape(value)}")


def standardize(x, mean, std):
    """(x - mean) / std for x float[..., F] (NumPy or JAX array; the result is the same kind),
    as float32. mean, std float32[F] from `fit_standardizer` on the training split."""
    x = x if isinstance(x, jax.Array) else np.asarray(x)
    _check_stats(x, mean, std)
    return ((x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)


def unstandardize(z, mean, std):
    """z * std + mean for z float[..., F] (NumPy or JAX array), as float32: the inverse of
    `standardize`, e.g. for forecasts made in standardised units."""
    z = z if isinstance(z, jax.Array) else np.asarray(z)
    _check_stats(z, mean, std)
    return (z * np.asarray(std, np.float32) + np.asarray(mean, np.float32)).astype(np.float32)
