"""Keep freed memory in the process, so that a train step does not fault in fresh pages.

XLA's CPU runtime allocates a train step's temporaries as one large block per call and frees it
at the end; glibc serves a block that large with a fresh `mmap` and returns it with `munmap`, so
every step faults in each of its 4 KiB pages again (torch's CPU step does the same).

`keep_freed_memory()` tells glibc's malloc (`mallopt`) to serve blocks up to 1 GiB from its
heap, to keep up to 2 GiB of freed memory instead of returning it, and to use one arena for all
threads (a thread's own arena holds blocks of at most 64 MiB, beyond which glibc maps fresh
memory again). The next step then reuses the pages of the last one.

The cost: the process's resident memory stays at its peak instead of falling back after a
step. No result changes: only where the bytes live. It changes the whole process's malloc, so
the library never calls it itself, and neither do the pipeline's stages (their steps gain
nothing measurable); `LSTM_JAX_KEEP_FREED_MEMORY=0` makes it a no-op. What it buys, per config
and implementation: BENCHMARKS.md, "Freed memory kept".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

KEEP_ENV = "LSTM_JAX_KEEP_FREED_MEMORY"  # "1" (default): keep; "0": leave malloc as it is

# mallopt parameters (glibc's malloc.h) and the values set. mallopt takes an int: 2 GiB - 1 is
# the largest trim threshold it can be given.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
SETTINGS = ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, 1 << 30), (M_TRIM_THRESHOLD, (1 << 31) - 1))


def keep_requested() -> bool:
    """Whether LSTM_JAX_KEEP_FREED_MEMORY asks for it (default yes)."""
    return os.environ.get(KEEP_ENV, "1") != "0"


def _glibc():
    """The process's C library, when it is glibc (it alone has these mallopt parameters)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not hasattr(libc, "gnu_get_libc_version"):  # musl and others
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory (module docstring); returns whether it is set.
    A no-op returning False off glibc or when LSTM_JAX_KEEP_FREED_MEMORY=0. Call it before JAX's
    first computation: threads that have already allocated keep their own arenas."""
    if not keep_requested():
        return False
    libc = _glibc()
    if libc is None:
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in SETTINGS)
