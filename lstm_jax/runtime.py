"""Process-wide speed settings for pipeline stages and benchmarks.

- The persistent compilation cache: compiled XLA programs are stored in `.jax_cache/`
  (git-ignored) and reused by later runs with the same program, JAX version and machine, so a
  rerun of a stage spends its time training instead of compiling. Cached programs are the
  same programs: results are bitwise identical with a cold or a warm cache.
- The allocator (not used by default): `keep_freed_memory` stops glibc from handing large freed
  blocks back to the OS. It helped an earlier design that wrote [T, B, 4H] buffers on every
  step and slows the current one down (BENCHMARKS.md), so the stages leave glibc alone.
"""

from __future__ import annotations

import ctypes
import os

CACHE_ENV = "LSTM_JAX_COMPILATION_CACHE"  # a folder, or "off"
DEFAULT_CACHE = ".jax_cache"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)


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


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks (no mmap below 1 GiB, no heap trimming below 16 GiB).
    Returns False where there is no glibc (the setting is only a speed-up)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 34))


def configure() -> None:
    """Called first by every pipeline stage: the persistent compilation cache."""
    enable_compilation_cache()
