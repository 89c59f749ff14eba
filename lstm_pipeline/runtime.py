"""The persistent compilation cache for pipeline stages.

Compiled XLA programs are stored in `.jax_cache/` (git-ignored) and reused by later runs with
the same program, JAX version and machine, so a rerun of a stage spends its time training
instead of compiling. Cached programs are the same programs: results are bitwise identical with
a cold or a warm cache.
"""

from __future__ import annotations

import os

CACHE_ENV = "LSTM_JAX_COMPILATION_CACHE"  # a folder, or "off"
DEFAULT_CACHE = ".jax_cache"


def enable_compilation_cache(path: str | None = None) -> str | None:
    """Use the persistent compilation cache in `path` (default: $LSTM_JAX_COMPILATION_CACHE or
    .jax_cache); every program is cached, however quick to compile. Returns the folder, or None
    when the environment variable is "off"."""
    import jax

    path = path or os.environ.get(CACHE_ENV, DEFAULT_CACHE)
    if path == "off":
        return None
    jax.config.update("jax_compilation_cache_dir", os.path.abspath(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
