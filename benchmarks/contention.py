"""Sharing the machine: how much slower a train step gets when other jobs run beside it.

    python benchmarks/contention.py                       # both sections (part of make bench)
    python benchmarks/contention.py --sections pairs --configs a --steps 25 --rounds 2
    python benchmarks/contention.py --compare /tmp/old    # also native from an older copy

Sections:
  pairs   for each implementation (lstm_jax's native and fused, torch.nn.LSTM): the median step
          of one fresh process alone, then of N fresh processes started together (N = the cores
          this process may use), each measuring its own median. Slowdown = concurrent / alone;
          N jobs on N cores that each use every core alone should each take about N x (the
          issue-30 bound: at most 2.2x on 2 cores). Rounds alternate alone and together.
  queue   a sweep of two experiments of the pipeline's tutorial stage (`dvc exp run --queue`),
          run by `dvc queue start -j 1` and then `-j 2`, wall clock from start to the last
          result; -j 2 should finish no later than -j 1. Runs in a temporary clone of this
          repository (its committed state), so the workspace and its experiments are untouched.

Each worker is benchmarks/lstm_speed.py's (`--worker NAME`), the same step as `make bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEED = HERE / "lstm_speed.py"
NAMES = {"native": 'lstm_jax implementation="native"', "lstm_jax": "lstm_jax fused (XLA)", "torch": "torch.nn.LSTM"}


def cores() -> int:
    return len(os.sched_getaffinity(0))


def start_worker(name: str, config: str, steps: int, env: dict) -> subprocess.Popen:
    argv = [sys.executable, str(SPEED), "--worker", name, "--configs", config, "--steps", str(steps)]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, label: str) -> float:
    """The worker's median step time in seconds."""
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{label}: worker failed:\n{err[-2000:]}")
    return statistics.median(json.loads(out.strip().splitlines()[-1])["times"])


def section_pairs(names, config: str, steps: int, rounds: int, envs: dict, labels: dict) -> None:
    jobs = cores()
    print(f"\n## {jobs} jobs at once on {jobs} cores, config ({config}), median of {steps} steps per process\n")
    print("| implementation | alone (ms) | together, each job (ms) | slowdown | bound |")
    print("|---|---|---|---|---|")
    for name in names:
        env = envs[name]
        alone, together = [], []
        worker = name.split(":")[0]  # "native:compared" runs the native worker from another copy
        for _ in range(rounds):
            alone.append(finish(start_worker(worker, config, steps, env), f"{name} alone"))
            procs = [start_worker(worker, config, steps, env) for _ in range(jobs)]
            together += [finish(p, f"{name} together") for p in procs]
        solo = statistics.median(alone)
        each = ", ".join(f"{t * 1e3:.1f}" for t in together)
        worst = max(together) / solo
        verdict = "ok" if worst <= 1.1 * jobs else "OVER"
        bound = f"{1.1 * jobs:.1f}x {verdict}"
        print(f"| {labels.get(name, name)} | {solo * 1e3:.1f} | {each} | {worst:.2f}x (worst) | {bound} |")
        sys.stdout.flush()


def dvc(args, cwd: Path, env: dict) -> str:
    proc = subprocess.run(["dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"dvc {' '.join(args)}: failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def wait_for_queue(cwd: Path, env: dict, expected: int) -> None:
    """Until `expected` experiments have succeeded in all (dvc queue status lists earlier rounds'
    too) and none is running or queued; exits on a failed one."""
    while True:
        words = dvc(["queue", "status"], cwd, env).split()
        if words.count("Failed"):
            raise SystemExit("queue: an experiment failed (see `dvc queue logs NAME` in the clone)")
        if words.count("Success") >= expected and "Running" not in words and "Queued" not in words:
            return
        time.sleep(2)


def section_queue(params: list[str]) -> None:
    """Two experiments (params[0], params[1]) with -j 1, then with -j 2, in a temporary clone."""
    print(f"\n## dvc queue: two experiments ({', '.join(params)}), -j 1 against -j 2\n")
    print("| workers | wall clock (s) |")
    print("|---|---|")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with tempfile.TemporaryDirectory(prefix="lstm_jax_queue_") as tmp:
        clone = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        cache = dvc(["cache", "dir"], ROOT, env).strip()  # share the workspace's cache: no upstream reruns
        dvc(["cache", "dir", "--local", cache], clone, env)
        dvc(["checkout", "--quiet"], clone, env)
        ended = 0  # experiments the queue has finished so far, over both rounds
        for workers in (1, 2):
            for i, setting in enumerate(params):
                dvc(["exp", "run", "--queue", "--name", f"j{workers}-{i}", "-S", setting], clone, env)
            start = time.perf_counter()
            dvc(["queue", "start", "-j", str(workers)], clone, env)
            ended += len(params)
            wait_for_queue(clone, env, expected=ended)
            print(f"| -j {workers} | {time.perf_counter() - start:.1f} |")
            sys.stdout.flush()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="pairs,queue", help="comma-separated subset of pairs,queue")
    parser.add_argument("--configs", default="a", help="lstm_speed.py's config for the pairs (default: a)")
    parser.add_argument("--steps", type=int, default=25, help="timed steps per process")
    parser.add_argument("--rounds", type=int, default=2, help="alone/together rounds per implementation")
    parser.add_argument("--implementations", default="native,lstm_jax,torch")
    parser.add_argument("--compare", help="also native from this older copy of the package (on PYTHONPATH)")
    parser.add_argument(
        "--queue-params",
        default="tutorial.seed=1,tutorial.seed=2",
        help="the two experiments' -S settings, comma-separated",
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import lstm_speed

    lstm_speed.print_machine()
    sections = args.sections.split(",")
    if "pairs" in sections:
        names = args.implementations.split(",")
        envs, labels = {name: dict(os.environ) for name in names}, dict(NAMES)
        if args.compare:
            names.insert(1, "native:compared")
            envs["native:compared"] = {**os.environ, "PYTHONPATH": args.compare}
            labels["native:compared"] = f"native from {args.compare}"
        section_pairs(names, args.configs, args.steps, args.rounds, envs, labels)
    if "queue" in sections:
        section_queue(args.queue_params.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
