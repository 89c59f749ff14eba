"""The `realdata` extra (sktime, statsmodels, scikit-learn): only the classification and
forecasting stages import it, and only through `require`, so a missing install is one line."""

from __future__ import annotations

import importlib

from lstm_jax.errors import ConfigError

INSTALL = "pip install -e '.[realdata]' (make repro installs it from requirements/pipeline.lock)"


def require(module: str):
    """Import `module` (e.g. "sktime.datasets") or raise a one-line ConfigError naming the install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{module}: not installed ({exc.name} missing); the real-data stages need {INSTALL}"
        ) from None
