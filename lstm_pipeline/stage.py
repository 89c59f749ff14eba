"""The stage runner: what every `stages/*.py` script shares.

`run_stage(main, description, add_arguments)` parses the paths `dvc.yaml` passes on the command
line (plus `--params` and `--debug`), enables the persistent compilation cache, validates
params.yaml, calls `main(params, args)`, and turns input errors (`LstmJaxError`) into one line
on stderr and exit status 2.

A stage never outlives the `dvc repro` that started it: when its parent (or, if the parent is
a shell, the shell's parent) ends, even by SIGKILL, the stage stops within about a second
(Linux's parent-death signal, plus a watchdog thread for the shell case and other systems), so
an orphan cannot race the next run's writes. SIGTERM and Ctrl-C unwind like an error, letting
the atomic writers remove their temporary files, and print one line.
"""

from __future__ import annotations

from lstm_pipeline import pinned  # first, before NumPy: a script that imports this module first is pinned
import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from lstm_jax.cli import fail
from lstm_jax import portability
from lstm_jax.errors import DataError, LstmJaxError
from lstm_jax.io import write_json, read_regular_file
from lstm_pipeline import runtime


def run_stage(main, description: str, add_arguments=None) -> None:
    """Entry point of a stage script. `add_arguments(parser)` declares the stage's own options
    (the paths it reads and writes); `main(params, args)` does the work."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    _exit_with_parent()
    _log_library_progress()
    try:
        # Same bits on any x86-64 AVX2 machine, whatever its cores (LSTM_JAX_PORTABLE=0: off).
        portability.pin_for_portability()
        pinned.rerun_pinned()  # and NumPy's and OpenBLAS's kernels (the baselines' bits)
        runtime.enable_compilation_cache()  # .jax_cache/: a rerun loads instead of compiling
        from lstm_pipeline.config.params import load_params

        main(load_params(args.params), args)
    except LstmJaxError as exc:
        sys.exit(fail(exc, args.debug))
    except KeyboardInterrupt:
        print("error: interrupted; outputs not written", file=sys.stderr)
        sys.exit(130)


SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "fish"}
WATCH_SECONDS = 0.5  # how often the watchdog looks at the parent
GRACE_SECONDS = 10.0  # after SIGTERM, how long the stage may unwind before it is ended hard


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM: unwinds (temporary files removed), exit 143."""


_said = threading.Event()  # the one line explaining the stop has been printed


def _say_once(message: str) -> None:
    if not _said.is_set():
        _said.set()
        print(f"error: {message}", file=sys.stderr, flush=True)


_ORPHANED = "the process that started this stage (pid {pid}) has ended; stopping, so as not to race the next run"
_parent = [0]  # the parent pid at start


def _on_sigterm(signum, frame):
    orphaned = _parent[0] > 1 and os.getppid() != _parent[0]
    _say_once(_ORPHANED.format(pid=_parent[0]) if orphaned else "terminated (SIGTERM); outputs not written")
    raise Terminated(128 + signal.SIGTERM)


def _proc_stat(pid: int) -> tuple[str, str, int, int] | None:
    """(command name, state, parent pid, start time) of `pid` from /proc, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
    return name, rest[0], int(rest[1]), int(rest[19])


def _alive(pid: int, start: int | None) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[1] not in ("Z", "X") and (start is None or stat[3] == start)


def _exit_with_parent() -> None:
    """Stop this process (SIGTERM, then exit after GRACE_SECONDS) once the process that
    started it ends: PR_SET_PDEATHSIG on Linux, and a daemon thread that watches the parent
    (and, when the parent is a shell that did not exec, the shell's parent: dvc)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    parent = _parent[0] = os.getppid()
    if parent <= 1:
        return  # started by init (a container's entry point): nothing to outlive
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # it ended before the signal was set up
            _say_once(_ORPHANED.format(pid=parent))
            sys.exit(128 + signal.SIGTERM)
    except (AttributeError, OSError):
        pass  # not Linux: the watchdog alone
    stat = _proc_stat(parent)
    watched = [(parent, stat[3] if stat else None)]
    if stat is not None and stat[0] in SHELLS and stat[2] > 1:
        grand = _proc_stat(stat[2])
        watched.append((stat[2], grand[3] if grand else None))
    threading.Thread(target=_watch, args=(parent, watched), name="parent-watchdog", daemon=True).start()


def _watch(parent: int, watched: list[tuple[int, int | None]]) -> None:
    while os.getppid() == parent and all(_alive(pid, start) for pid, start in watched):
        time.sleep(WATCH_SECONDS)
    _say_once(_ORPHANED.format(pid=next((pid for pid, start in watched if not _alive(pid, start)), parent)))
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_SECONDS)
    os._exit(128 + signal.SIGTERM)  # the main thread is stuck in native code: end without unwinding


def _log_library_progress() -> None:
    """Send the library's INFO messages (epochs, resumes, skipped checkpoints) to the stage log;
    JAX's own INFO chatter stays off."""
    logger = logging.getLogger("lstm_jax")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def write_metrics(path: str | Path, metrics: dict) -> None:
    """A stage's metrics JSON, with the platform that produced it under "platform" (see
    `lstm_jax.portability.platform_record`: under the pins, the same on every machine)."""
    write_json(path, {**metrics, "platform": portability.platform_record()})


def seed_summary(values, *, extremes: bool = False) -> dict:
    """{"mean", "std"} (population std) of per-seed figures, in float64; with extremes, also
    "min" and "max"."""
    values = np.asarray(values, np.float64)
    out = {"mean": float(values.mean()), "std": float(values.std())}
    if extremes:
        out |= {"min": float(values.min()), "max": float(values.max())}
    return out


def read_json(path: str | Path):
    """A stage's input JSON; a missing file names the stage to run first."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; run the stage that writes it first")
    try:
        return json.loads(read_regular_file(path, 256 << 20).decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8, integers of thousands of digits
        raise DataError(f"{path}: expected JSON, found a damaged file ({str(exc)[:200]}); rerun its stage") from None
