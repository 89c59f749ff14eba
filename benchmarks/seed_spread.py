"""Seed spread of the CI gate: how much each metric gated in thresholds.yaml moves between training
seeds, so that every tolerance there can be justified by a measured spread.

For each seed offset s, the seeded sections (train, tutorial, transfer, sequential) get the seed
params.yaml gives them plus s (so s = 0 is the committed run, and a sanity check: it should give
the committed metrics back), and the stages that train (train, tutorial, transfer, sequential),
reload and evaluate run with dvc.yaml's own command lines, their outputs moved to runs/seed<s>/.
prepare and the Kneser-Ney baseline (NumPy float64, no seed: spread 0) run once, in runs/shared/.
The alphabet framings are not rerun: the committed metrics/alphabet/<framing>.json already hold
the accuracy of each of `alphabet.seeds` seeds, whose mean is the gated value, so their spread is
read from there (per-seed std and the std of the mean, std / sqrt(seeds)).

The stages run in a clone (`--clone`, its own code via PYTHONPATH, its own compilation cache), so
a working tree being edited is never imported. About 5 minutes of CPU per seed on 2 cores. Run:

    git clone -q . /tmp/spread
    nice -n 10 python benchmarks/seed_spread.py --clone /tmp/spread --seeds 0 1 2 3 4

It prints a table (per metric: the value per seed, mean, std, max - min, the tolerance in
thresholds.yaml as an absolute value, whether it covers 3 std, and a suggested tolerance:
max(3 std, range), for a mean over n alphabet seeds max(3 std / sqrt(n), range / n), rounded up to
one significant digit) and writes the same to benchmarks/results/seed_spread.json. A stage that
finished (runs/.../done/<stage>) is not rerun; delete the runs folder to start again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from lstm_jax.portability import cpu_model

ROOT = Path(__file__).resolve().parents[1]
SEEDED = ("train", "tutorial", "transfer", "sequential")  # params.yaml sections with a `seed`
SHARED_STAGES = ("prepare", "baseline")  # no seed: run once
SEED_STAGES = ("train", "tutorial", "reload", "transfer", "sequential", "evaluate")
OUTPUT_DIRS = ("models", "checkpoints", "metrics", "dvclive", "plots")  # moved into the run folder
ALPHABET_TABLE = "metrics/alphabet_table.json"


def lookup(tree, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def stage_command(cmd: str, params: dict, run_dir: Path, params_file: Path) -> list[str]:
    """dvc.yaml's command line for a stage, `${section.key}` filled in from params, `python`
    this interpreter, and every output path moved under run_dir (data/ stays shared)."""
    cmd = re.sub(r"\$\{([\w.]+)\}", lambda m: str(lookup(params, m.group(1))), cmd)
    argv = shlex.split(cmd)
    argv[0] = sys.executable if argv[0] == "python" else argv[0]
    for i, token in enumerate(argv):
        if token.split("/", 1)[0] in OUTPUT_DIRS:
            argv[i] = str(run_dir / token)
    return argv + ["--params", str(params_file)]


def run_stage(name: str, argv: list[str], run_dir: Path, clone: Path, env: dict) -> float:
    """Run one stage in the clone, its log in run_dir/logs; return its seconds (0 if done before)."""
    done = run_dir / "done" / name
    if done.exists():
        print(f"  {run_dir.name}/{name}: done before, reused", flush=True)
        return 0.0
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    (run_dir / "done").mkdir(exist_ok=True)
    log = run_dir / "logs" / f"{name}.log"
    start = time.perf_counter()
    with log.open("w") as out:
        rc = subprocess.run(argv, cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    if rc != 0:
        sys.exit(f"{run_dir.name}/{name} failed (exit {rc}); see {log}:\n" + log.read_text()[-3000:])
    done.write_text(shlex.join(argv) + "\n")
    print(f"  {run_dir.name}/{name}: {seconds:.0f} s", flush=True)
    return seconds


def run_seeds(clone: Path, runs: Path, seeds: list[int]) -> dict:
    """Run the shared stages once and the seeded stages per seed; return their seconds."""
    dvc = yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]
    base = yaml.safe_load((clone / "params.yaml").read_text())
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(clone), os.environ.get("PYTHONPATH")])),
        "LSTM_JAX_COMPILATION_CACHE": str(clone / ".jax_cache"),
    }
    seconds = {}
    shared = runs / "shared"
    for name in SHARED_STAGES:
        argv = stage_command(dvc[name]["cmd"], base, shared, clone / "params.yaml")
        seconds[f"shared/{name}"] = run_stage(name, argv, shared, clone, env)
    for seed in seeds:
        run_dir = runs / f"seed{seed}"
        params = json.loads(json.dumps(base))  # a deep copy
        for section in SEEDED:
            params[section]["seed"] = base[section]["seed"] + seed
        params_file = run_dir / "params.yaml"
        run_dir.mkdir(parents=True, exist_ok=True)
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        # evaluate's inputs from the unseeded stages: this CPU's baseline, the committed alphabet.
        (run_dir / "metrics").mkdir(exist_ok=True)
        shutil.copy(shared / "metrics/baseline.json", run_dir / "metrics/baseline.json")
        shutil.copy(clone / ALPHABET_TABLE, run_dir / ALPHABET_TABLE)
        shutil.copytree(clone / "plots/alphabet", run_dir / "plots/alphabet", dirs_exist_ok=True)
        for name in SEED_STAGES:
            argv = stage_command(dvc[name]["cmd"], params, run_dir, params_file)
            seconds[f"seed{seed}/{name}"] = run_stage(name, argv, run_dir, clone, env)
    return seconds


def ceil1(x: float) -> float:
    """x rounded up to one significant digit (0.0137 -> 0.02)."""
    exponent = math.floor(math.log10(x))
    digit = math.ceil(x / 10.0**exponent - 1e-9)
    return float(f"{digit}e{exponent}")


def spread_row(file: str, key: str, spec: dict, committed: float, values, n_mean: int | None, stats=None) -> dict:
    """One gated metric: its per-seed values (or, for an alphabet metric without them, the
    stage's mean and population std), its spread, and its tolerance against that spread.
    n_mean: the number of seeds the gated value is a mean over (alphabet), else None."""
    if values is not None:
        v = np.asarray(values, dtype=float)
        mean = float(v.mean())
        std = float(v.std(ddof=1)) if v.size > 1 else 0.0
        low, high = float(v.min()), float(v.max())
    else:  # only mean and std (ddof 0) were written: std with ddof 1, range known only when 0
        mean, std = stats["mean"], stats["std"] * math.sqrt(n_mean / (n_mean - 1))
        low = high = mean if stats["std"] == 0 else None
    spread = None if low is None else high - low
    # What moves the gated value: a single seed's value, or the mean over n_mean seeds.
    gate_std = std if n_mean is None else std / math.sqrt(n_mean)
    gate_range = spread if n_mean is None or spread is None else spread / n_mean
    need = max(3 * gate_std, gate_range or 0.0)
    in_band = None if low is None else spec.get("min", -math.inf) <= low and high <= spec.get("max", math.inf)
    atol, rtol = spec.get("atol"), spec.get("rtol")
    tol = None if atol is None and rtol is None else (atol or 0.0) + (rtol or 0.0) * abs(committed)
    if tol is None:
        suggested = "band only: keep"
    elif need == 0:
        suggested = "keep (no spread measured)"
    elif rtol is not None and atol is None:
        suggested = f"rtol: {ceil1(need / abs(committed)):g}"
    else:
        suggested = f"atol: {ceil1(need):g}"
    return {
        "file": file,
        "metric": key,
        "values": None if values is None else [float(x) for x in values],
        "committed": committed,
        "mean": mean,
        "std": std,
        "min": low,
        "max": high,
        "range": spread,
        "mean_over_seeds": n_mean,
        "std_of_gated_value": gate_std,
        "tolerance_spec": {k: spec[k] for k in ("atol", "rtol") if k in spec},
        "band": [spec.get("min"), spec.get("max")],
        "tolerance": tol,
        "covers_3std": None if tol is None else bool(tol >= 3 * gate_std),
        "covers_range": None if tol is None or gate_range is None else bool(tol >= gate_range),
        "in_band": in_band,
        "suggested": suggested,
    }


def collect(clone: Path, runs: Path, seeds: list[int]) -> list[dict]:
    thresholds = yaml.safe_load((clone / "thresholds.yaml").read_text())
    rows = []
    for file, specs in thresholds.items():
        committed_tree = json.loads(subprocess.check_output(["git", "-C", str(clone), "show", f"HEAD:{file}"]))
        for key, spec in specs.items():
            committed = float(lookup(committed_tree, key))
            if file == ALPHABET_TABLE:  # "<framing>.plain.<metric>": the mean over alphabet.seeds seeds
                framing, alphabet, metric = key.split(".")
                result = json.loads((clone / "metrics/alphabet" / f"{framing}.json").read_text())[alphabet]
                values = result.get(f"{metric}_per_seed")
                n = len(values) if values is not None else None
                if n is None:
                    n = yaml.safe_load((clone / "params.yaml").read_text())["alphabet"]["seeds"]
                rows.append(spread_row(file, key, spec, committed, values, n, result[metric]))
            else:
                values = [float(lookup(json.loads((runs / f"seed{s}" / file).read_text()), key)) for s in seeds]
                rows.append(spread_row(file, key, spec, committed, values, None))
    return rows


def fmt(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def print_table(rows: list[dict], seeds: list[int]) -> None:
    print(f"\nseed offsets {seeds} (alphabet rows: the committed per-seed values of its own seeds 0..n-1)")
    header = ["metric", "per-seed values", "mean", "std", "range", "gated std", "tolerance", "3 std?", "suggested"]
    lines = [header]
    for r in rows:
        spec = ", ".join(f"{k} {v:g}" for k, v in r["tolerance_spec"].items()) or "band"
        values = " ".join(fmt(v) for v in r["values"]) if r["values"] is not None else "(mean, std only)"
        gated = fmt(r["std_of_gated_value"]) + (f" (/sqrt{r['mean_over_seeds']})" if r["mean_over_seeds"] else "")
        covered = {None: "-", True: "yes", False: "NO"}[r["covers_3std"]]
        tolerance = spec if r["tolerance"] is None else f"{spec} = {fmt(r['tolerance'])}"
        name = r["metric"] if r["file"] == "metrics/summary.json" else f"{Path(r['file']).stem}:{r['metric']}"
        lines.append(
            [name, values, fmt(r["mean"]), fmt(r["std"]), fmt(r["range"]), gated, tolerance, covered, r["suggested"]]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print(" | ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())


def sanity(rows: list[dict], seeds: list[int]) -> dict | None:
    """Seed offset 0 is the committed run: its gated values against the committed ones."""
    if 0 not in seeds:
        return None
    i = seeds.index(0)
    diffs = {
        f"{r['file']}:{r['metric']}": abs(r["values"][i] - r["committed"]) for r in rows if r["file"] != ALPHABET_TABLE
    }
    worst = max(diffs, key=diffs.get)
    return {"max_abs_diff": diffs[worst], "worst": worst, "diffs": diffs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clone", type=Path, required=True, help="a clone of the repository to run the stages in")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seed offsets (0: committed)")
    parser.add_argument("--runs", type=Path, help="folder of the per-seed outputs (default: CLONE/runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/seed_spread.json", help="JSON to write")
    args = parser.parse_args()
    clone = args.clone.resolve()
    runs = (args.runs or clone / "runs").resolve()
    start = time.perf_counter()
    cpu = cpu_model()
    print(f"CPU: {cpu} ({os.cpu_count()} cores); clone {clone} at {git_head(clone)}; runs in {runs}", flush=True)
    seconds = run_seeds(clone, runs, args.seeds)
    rows = collect(clone, runs, args.seeds)
    print_table(rows, args.seeds)
    check = sanity(rows, args.seeds)
    if check is not None:
        worst = f"{check['max_abs_diff']:.3g} ({check['worst']})"
        print(f"\nsanity: seed offset 0 against the committed metrics, max |diff| {worst}")
    wall = time.perf_counter() - start
    print(f"CPU: {cpu}; wall time {wall:.0f} s ({sum(seconds.values()):.0f} s in stages run now)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "what": "spread over training seeds of the metrics gated in thresholds.yaml (std with ddof=1)",
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "commit": git_head(clone),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "seeds": args.seeds,
        "seed_scheme": f"seed offset s: {', '.join(SEEDED)} get their params.yaml seed + s (s = 0: committed run)",
        "wall_seconds": round(wall, 1),
        "stage_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "sanity_seed0_vs_committed": check,
        "metrics": rows,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


def git_head(clone: Path) -> str:
    return subprocess.check_output(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], text=True).strip()


if __name__ == "__main__":
    main()
