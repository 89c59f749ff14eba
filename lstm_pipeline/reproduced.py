"""Did a forced rerun reproduce the committed outputs bit for bit?

`dvc.lock` holds the hash of every stage's every output (the git-tracked metrics and plots as
well as the DVC-cached models and data), so the committed `dvc.lock` against the one a rerun
just wrote says exactly which outputs came out different. Under the portability pins
(`lstm_jax.portability`) a rerun on any x86-64 CPU with AVX2 and FMA must leave it unchanged;
elsewhere (a GPU, an ARM CPU, LSTM_JAX_PORTABLE=0) bit identity is not promised, the check is
skipped, and the gate's tolerances are what applies.

`make gate` runs the forced rerun under `tools/cpuid_probe.py` (AVX-512 hidden, a 32 KiB L1d and
512 KiB L2 reported to jaxlib, NumPy and OpenBLAS), so the check compares the committing CPU's
bits with another CPU's: see `lstm_jax.portability` and `lstm_pipeline.pinned` for what decided
the bits before each pin.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from lstm_jax.errors import ConfigError
from lstm_pipeline.gate import check_revision
from lstm_pipeline.config.yamlfile import load_yaml

LOCK = "dvc.lock"
PLATFORM_FROM = "metrics/summary.json"  # the last stage's metrics: its platform is the run's


def _hashes(lock: dict) -> dict[tuple[str, str], str]:
    """{(stage, out path): hash} for every output in a parsed dvc.lock."""
    found = {}
    for stage, entry in (lock.get("stages") or {}).items():
        for out in entry.get("outs") or []:
            found[(stage, out["path"])] = out.get("md5") or out.get("hash") or json.dumps(out, sort_keys=True)
    return found


def changed_outputs(root: Path, rev: str) -> list[str]:
    """'stage: path' for each output whose hash in root/dvc.lock differs from revision `rev`'s
    (an output present in only one of them counts as changed)."""
    commit = check_revision(rev, root)
    shown = subprocess.run(["git", "show", f"{commit}:{LOCK}"], cwd=root, capture_output=True)
    if shown.returncode != 0:
        raise ConfigError(f"{LOCK}: not committed at {rev}; commit the pipeline's results first")
    committed = _hashes(yaml.safe_load(shown.stdout) or {})
    fresh = _hashes(load_yaml(root / LOCK, "DVC lock file") or {})
    keys = sorted(set(committed) | set(fresh))
    return [f"{stage}: {path}" for stage, path in keys if committed.get((stage, path)) != fresh.get((stage, path))]


def run_was_pinned(root: Path) -> bool:
    """Whether the run that wrote root/metrics/summary.json ran under the portability pins."""
    path = root / PLATFORM_FROM
    try:
        return bool(json.loads(path.read_text(encoding="utf-8"))["platform"]["portable"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: expected a metrics file with platform.portable; run `dvc repro` first") from None
