"""Reading files named by configuration safely: inside a root folder, regular files only.

A path taken from a config file must not reach outside the project through `..` or a symlink
(`texts/x -> /proc/self/environ`), and must not be a FIFO or a device (reading a FIFO blocks
forever). `resolve_inside` checks a path before it is read; `open_regular` and
`read_regular_file` open without blocking and check the opened file itself, so a file swapped
for a FIFO in between is still refused; `irregular_entries` lists what in a folder would trip
a tool that hashes every file in it (DVC's `dvc status` hangs on a FIFO under a tracked folder).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lstm_jax.errors import DataError


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def resolve_inside(path: str | Path, root: str | Path, where: str | None = None) -> Path:
    """`root / path` with every symlink resolved; DataError unless it lies inside `root` (itself
    resolved) and is an existing regular file. `where` names the path in errors (default: path)."""
    where = where or str(path)
    root = Path(root).resolve()
    target = root / path
    try:
        resolved = target.resolve(strict=True)
    except FileNotFoundError:
        raise DataError(f"{where}: expected an existing file, found nothing at {str(path)!r}") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on older Pythons
        raise DataError(f"{where}: cannot resolve {str(path)!r} ({exc})") from None
    if resolved != root and root not in resolved.parents:
        raise DataError(f"{where}: expected a file inside {root}, found {str(path)!r} -> {resolved}")
    mode = resolved.stat().st_mode
    if not stat.S_ISREG(mode):
        raise DataError(f"{where}: expected a regular file, found {_kind(mode)} at {str(path)!r}")
    return resolved


def open_regular(path: str | Path, max_bytes: int | None = None, encoding: str | None = None):
    """`path` opened for reading (binary, or text in `encoding`) without blocking on a FIFO:
    DataError unless the opened file itself is a regular file of at most `max_bytes` bytes.
    Use it where a file named by a config is read in chunks (e.g. texts under texts/)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise DataError(f"{path}: cannot open the file ({exc.strerror})") from None
    st = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = f"expected a regular file, found {_kind(st.st_mode)}"
    elif max_bytes is not None and st.st_size > max_bytes:
        problem = f"expected at most {max_bytes} bytes, found {st.st_size}"
    if problem:
        os.close(fd)
        raise DataError(f"{path}: {problem}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb") if encoding is None else os.fdopen(fd, "r", encoding=encoding)


def read_regular_file(path: str | Path, max_bytes: int | None = None) -> bytes:
    """The bytes of `path`, opened without blocking (a FIFO is refused, never waited on) and
    checked to be a regular file of at most `max_bytes` bytes."""
    with open_regular(path, max_bytes) as f:
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise DataError(f"{path}: expected at most {max_bytes} bytes, found more (the file grew while read)")
    return data


def irregular_entries(folder: str | Path, root: str | Path) -> list[str]:
    """Entries under `folder` (recursively, not following symlinked folders) that are neither
    regular files nor folders, or symlinks resolving outside `root`: one description each."""
    folder, root = Path(folder), Path(root).resolve()
    found = []
    if not folder.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            try:
                if path.is_symlink():
                    resolved = path.resolve(strict=True)
                    if resolved != root and root not in resolved.parents:
                        found.append(f"{path} is a symlink to {resolved}, outside {root}")
                        continue
                mode = path.stat().st_mode
            except (OSError, RuntimeError) as exc:
                found.append(f"{path} cannot be resolved ({getattr(exc, 'strerror', None) or exc})")
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                found.append(f"{path} is {_kind(mode)}")
    return sorted(found)
