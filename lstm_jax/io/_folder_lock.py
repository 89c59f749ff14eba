"""One writer per folder: an exclusive, non-blocking lock that a second process fails to take.

`lock_folder(folder)` takes an `flock` on `folder/.lock` (created empty, and left in place, so a
folder tracked by DVC hashes the same every run). The kernel drops the lock when its holder
dies, however it dies, so a killed run never leaves a stale lock; a second process asking for
it meanwhile gets one `CheckpointError` at once instead of racing the first one's writes.
Within one process the lock is re-entrant (the same folder may be locked again) and is held
until `unlock_folder` or the process ends.
"""

from __future__ import annotations

import os
from pathlib import Path

from lstm_jax.errors import CheckpointError

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # resolved folder -> the open lock file's descriptor


def lock_folder(folder: str | Path) -> None:
    """Create `folder` if needed and take its lock, or raise CheckpointError if another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    if key in _held:
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return
    path = folder / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot create the lock file ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise CheckpointError(
            f"{folder}: in use by another running process (it holds {path}); wait for it to end or stop it, "
            "then run again"
        ) from None
    _held[key] = fd


def unlock_folder(folder: str | Path) -> None:
    """Release this process's lock on `folder` (the lock file stays)."""
    fd = _held.pop(Path(folder).resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock
