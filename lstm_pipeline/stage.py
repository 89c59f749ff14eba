"""The stage runner: what every `stages/*.py` script shares.

`run_stage(main, description, add_arguments)` parses the paths `dvc.yaml` passes on the command
line (plus `--params` and `--debug`), enables the persistent compilation cache, validates
params.yaml, calls `main(params, args)`, and turns input errors (`LstmJaxError`) into one line
on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from lstm_jax.cli import fail
from lstm_jax.errors import DataError, LstmJaxError
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
    _log_library_progress()
    runtime.enable_compilation_cache()  # .jax_cache/: a rerun loads instead of compiling
    try:
        from lstm_pipeline.params import load_params

        main(load_params(args.params), args)
    except LstmJaxError as exc:
        sys.exit(fail(exc, args.debug))


def _log_library_progress() -> None:
    """Send the library's INFO messages (epochs, resumes, skipped checkpoints) to the stage log;
    JAX's own INFO chatter stays off."""
    logger = logging.getLogger("lstm_jax")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def read_json(path: str | Path):
    """A stage's input JSON; a missing file names the stage to run first."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; run the stage that writes it first")
    return json.loads(path.read_text("utf-8"))
