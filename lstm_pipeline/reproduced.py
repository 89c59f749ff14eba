"""Did a forced rerun reproduce the committed outputs bit for bit?

`dvc.lock` holds the hash of every stage's every output (the git-tracked metrics and plots as
well as the DVC-cached models and data), so the committed `dvc.lock` against the one a rerun
just wrote says exactly which outputs came out different. Under the portability pins
(`lstm_jax.portability`) a rerun on any x86-64 CPU with AVX2 and FMA must leave it unchanged;
elsewhere (a GPU, an ARM CPU, LSTM_JAX_PORTABLE=0) bit identity is not promised, the check is
skipped, and the gate's tolerances are what applies.

Known exception: XLA's Eigen sizes its matrix blocks from the CPU's cache sizes, which the pins
cannot fix. The committed outputs were made and checked on CPUs with a 32 KiB L1 data cache; on
an AMD EPYC with 48 KiB (CPU family 26) every LSTM stage wrote other bits (README, "The same bits
on a colleague's x86-64 machine"), so a failed check names this CPU's L1 data cache when it differs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from lstm_jax.errors import ConfigError
from lstm_pipeline.gate import check_revision
from lstm_pipeline.yamlfile import load_yaml

LOCK = "dvc.lock"
L1_DATA_KIB = 32  # the L1 data cache of the CPUs the committed outputs were made and checked on
SYSFS_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")
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


def l1_data_cache_kib(cache_dir: Path | None = None) -> int | None:
    """This CPU's level-1 data cache in KiB, as Linux's sysfs (or `cache_dir`) lists it; None
    where it does not."""
    for index in sorted((cache_dir or SYSFS_CACHE).glob("index*")):
        try:
            level, kind, size = ((index / name).read_text().strip() for name in ("level", "type", "size"))
        except OSError:
            continue
        if level == "1" and kind == "Data" and size.endswith("K") and size[:-1].isdigit():
            return int(size[:-1])
    return None


def cache_hint(cache_dir: Path | None = None) -> str | None:
    """Why outputs may differ on this CPU although the run was pinned, or None."""
    l1 = l1_data_cache_kib(cache_dir)
    if l1 is None or l1 == L1_DATA_KIB:
        return None
    return (
        f"this CPU's L1 data cache is {l1} KiB, not the {L1_DATA_KIB} KiB of the CPUs the committed "
        "outputs were made on; XLA's Eigen sizes its matrix blocks from it, which the pins cannot fix "
        "(README: 'The same bits on a colleague's x86-64 machine')"
    )


def run_was_pinned(root: Path) -> bool:
    """Whether the run that wrote root/metrics/summary.json ran under the portability pins."""
    path = root / PLATFORM_FROM
    try:
        return bool(json.loads(path.read_text(encoding="utf-8"))["platform"]["portable"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: expected a metrics file with platform.portable; run `dvc repro` first") from None
