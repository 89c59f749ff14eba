"""Pins for the numeric libraries under the stages' baselines: imported first by every stage
script, before NumPy, SciPy or scikit-learn load (they read these variables once, at load time).

XLA's CPU code is pinned by `lstm_jax.portability`. The classical baselines (statsmodels' ETS,
scikit-learn's logistic regression) go through NumPy and SciPy instead, and their bits follow the
CPU in two places:
- OpenBLAS (bundled in both wheels) picks its kernels by CPUID: SkylakeX on an AVX-512 CPU,
  Haswell on an AVX2 one, "Zen" on some AMD parts; the kernels sum in different orders, and its
  thread count (the cores) splits some sums. The sunspots ETS baseline's MASE came out 2.2354 on
  an AMD family 26 CPU and 2.2357 on a family 25 one (issue 30).
- NumPy dispatches some of its loops by CPUID too (X86_V4 and AVX512_ICL): its AVX-512 `exp`
  gave the tutorial's train perplexity another last bit than the AVX2 path.

Pinning beats rewriting the baselines without BLAS: the field's baselines stay the field's own
code (the M4 benchmarks are statsmodels'), and every later baseline is covered too. The pins:
OpenBLAS's Haswell kernels (AVX2 + FMA: what every CPU the pins serve has) on one thread, OpenMP
on one thread, NumPy's dispatch capped at X86_V3 (AVX2 + FMA). They are set only where
`LSTM_JAX_PORTABLE` is not "0" and the CPU has AVX2 and FMA (elsewhere NumPy would refuse X86_V3),
and they override a user's own values, as the XLA pins do. `check_pinned()` verifies, after
the libraries loaded, that the pins took effect (`lstm_pipeline.stage` calls it).

This module imports nothing but `os`, so that importing it first is enough.
"""

from __future__ import annotations

import os
import sys

PORTABLE_ENV = "LSTM_JAX_PORTABLE"  # the same switch as lstm_jax.portability's
BLAS_CORE = "Haswell"
NUMPY_FEATURES = "X86_V3"
NUMERIC_PINNED_ENV = {
    "OPENBLAS_CORETYPE": BLAS_CORE,
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "NPY_ENABLE_CPU_FEATURES": NUMPY_FEATURES,
}
REQUIRED_CPU_FLAGS = ("avx2", "fma")


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def numeric_pins_wanted() -> bool:
    """Whether this process should run the numeric libraries pinned (x86-64, AVX2 + FMA, and
    LSTM_JAX_PORTABLE not "0")."""
    import platform

    return (
        os.environ.get(PORTABLE_ENV, "1").strip() != "0"
        and platform.machine().lower() in ("x86_64", "amd64")
        and all(flag in _cpu_flags() for flag in REQUIRED_CPU_FLAGS)
    )


def pin_numerics() -> bool:
    """Set the pins in this process's environment; returns whether they were set."""
    if not numeric_pins_wanted():
        return False
    os.environ.update(NUMERIC_PINNED_ENV)
    return True


# Imported after NumPy or SciPy, whose process did not start with the pins in its environment:
# too late for the pins in this process (check_pinned says so; rerun_pinned starts it again).
_STARTED_PINNED = all(os.environ.get(name) == value for name, value in NUMERIC_PINNED_ENV.items())
_NUMERIC = ("numpy", "scipy", "sklearn", "statsmodels")
LOADED_BEFORE = [] if _STARTED_PINNED else sorted(m for m in _NUMERIC if m in sys.modules)


def numeric_pin_problems() -> list[str]:
    """What differs from the pins in the libraries this process has loaded (empty: pinned).
    Loads NumPy, SciPy's BLAS and threadpoolctl to ask them."""
    import numpy as np
    import scipy.linalg  # noqa: F401  (loads SciPy's own OpenBLAS, so that it is checked too)

    problems = [f"{name}: loaded before lstm_pipeline.pinned" for name in LOADED_BEFORE]
    try:
        from threadpoolctl import threadpool_info  # scikit-learn's dependency (the realdata extra)
    except ImportError:
        threadpool_info = list
    for pool in threadpool_info():
        if pool.get("internal_api") != "openblas":
            continue
        name = os.path.basename(pool["filepath"])
        if pool.get("architecture") != BLAS_CORE:
            problems.append(f"{name}: expected the {BLAS_CORE} kernels, found {pool.get('architecture')}")
        if pool.get("num_threads") != 1:
            problems.append(f"{name}: expected 1 thread, found {pool.get('num_threads')}")
    features = np._core._multiarray_umath.__cpu_features__
    above = sorted(f for f in ("X86_V4", "AVX512_ICL", "AVX512_SPR") if features.get(f))
    if above:
        problems.append(f"numpy: expected its dispatch capped at {NUMPY_FEATURES}, found {', '.join(above)} in use")
    return problems


REEXEC_ENV = "LSTM_JAX_PINNED_REEXEC"  # set in the process that `rerun_pinned` started


def rerun_pinned() -> None:
    """Where the pins are wanted but did not take effect (NumPy loaded before this module, as in
    a user's stage script that imports it later), run this program again from the start in a
    fresh interpreter, whose environment now holds the pins (same process id, same arguments).
    Returns where nothing needs doing; raises ConfigError where a rerun did not help or cannot
    be made."""
    problems = numeric_pin_problems() if numeric_pins_wanted() else []
    if not problems:
        return
    if os.environ.get(REEXEC_ENV) == "1" or len(sys.orig_argv) < 2:
        _refuse(problems)
    os.environ[REEXEC_ENV] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def check_pinned() -> None:
    """Raise ConfigError naming what is unpinned, where the pins are wanted but the numeric
    libraries loaded before them (a stage script that did not import this module first)."""
    if numeric_pins_wanted():
        problems = numeric_pin_problems()
        if problems:
            _refuse(problems)


def _refuse(problems: list[str]) -> None:
    from lstm_jax.errors import ConfigError

    raise ConfigError(
        "numeric pins not in force (import lstm_pipeline.pinned before numpy, first in the "
        "stage script): " + "; ".join(problems)
    )


pin_numerics()
