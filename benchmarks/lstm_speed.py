"""LSTM speed, side by side in one run: lstm_jax (fused, and native where its C++ kernels are
built) vs flax OptimizedLSTMCell vs torch.nn.LSTM.

    python benchmarks/lstm_speed.py            # everything (make bench); ~15 min on 2 CPU cores
    python benchmarks/lstm_speed.py --configs a --sections train --steps 20
    python benchmarks/lstm_speed.py --sections train --compare /tmp/old   # native now vs an older copy

Sections:
  train       configs (a) (b) (c): median train-step time (forward, backward, Adam) after
              warm-up, tokens/s, achieved GFLOP/s, share of the matmul peak measured in this run,
              ratios to each peer, and compile time cold and from a warm persistent cache;
              lstm_jax's implementation="native" is a row of its own when it can load;
              native and torch run once more each with glibc's malloc keeping freed memory
              (lstm_jax.training.keep_freed_memory()): with the page faults of fresh memory
              taken out of both, the rows compare the kernels;
              every implementation runs in its own fresh process, in 4 alternating rounds;
  kernels     the recurrent matmul alone in XLA, numpy and torch;
  techniques  config (a): what each speed technique buys, one variant at a time;
  generation  characters/s of three ways to sample from the char model;
  memory      config (b) shapes: XLA's scratch memory for a train step vs T, with and without
              segment-wise rematerialisation.
Each figure is a median; the machine and versions are printed first.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import speed_models as sm  # noqa: E402
from generation_speed import section_generation  # noqa: E402
from long_sequence_memory import section_memory  # noqa: E402
from speed_models import median_time  # noqa: E402

from lstm_jax.training import keep_freed_memory  # noqa: E402
from lstm_jax.recurrence import native  # noqa: E402
from lstm_jax.portability import cpu_model, isa_extensions  # noqa: E402
from lstm_pipeline import runtime  # noqa: E402


def print_machine() -> None:
    import flax
    import optax

    versions = f"jax {jax.__version__}, flax {flax.__version__}, optax {optax.__version__}"
    try:
        import torch

        versions += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        versions += ", torch not installed"
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, ISA {' '.join(isa_extensions()) or 'unknown'}, "
        f"python {platform.python_version()}, "
        f"jax device: {jax.devices()[0].device_kind} ({jax.default_backend()})"
    )
    print(f"versions: {versions}")
    status = native.unavailable_reason() or f"loaded, a team of {native.team_size()} threads, {native.isa()} products"
    print(f'implementation="native": {status}')
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")


def matmul_peak() -> float:
    """The best float32 GFLOP/s of a 2048^3 matmul, JAX or torch, measured now."""
    n = 2048
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = 2 * n**3 / median_time(lambda: f(a).block_until_ready(), 10)[0] / 1e9
    line = f"matmul peak: 2048^3 float32: jax {best:.0f} GFLOP/s"
    try:
        import torch

        t = torch.ones(n, n)
        tg = 2 * n**3 / median_time(lambda: t @ t, 10)[0] / 1e9
        line += f", torch {tg:.0f} GFLOP/s"
        best = max(best, tg)
    except ImportError:
        pass
    print(line + f" -> peak used below: {best:.0f} GFLOP/s")
    return best


# Every timed variant, by name: (description, builder of a Step from a Config).
VARIANTS = {
    "lstm_jax": ("lstm_jax (fused, default settings)", lambda cfg: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg))),
    "native": (
        'lstm_jax implementation="native" (C++ loop, own GEMM, thread team)',
        lambda cfg: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg, implementation="native")),
    ),
    "flax": ("flax OptimizedLSTMCell", lambda cfg: sm.jax_step(cfg, sm.flax_rnn(cfg))),
    "torch": ("torch.nn.LSTM cpu", lambda cfg: sm.torch_step(cfg, "cpu")),
    "jax_cudnn": ("jax.experimental.rnn (cuDNN)", lambda cfg: sm.jax_step(cfg, sm.jax_cudnn_rnn(cfg))),
    "torch_cuda": ("torch.nn.LSTM cuda (cuDNN)", lambda cfg: sm.torch_step(cfg, "cuda")),
    "scan": (
        "lstm_jax scan: input projection hoisted as one matmul, autodiff",
        lambda cfg: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg, implementation="scan")),
    ),
    "unroll1": ("fused, unroll=1", lambda cfg: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg, unroll=1))),
    "unroll4": ("fused, unroll=4", lambda cfg: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg, unroll=4))),
    "groups2": ("fused, batch_groups=2", lambda cfg: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg, batch_groups=2))),
    "no_donation": ("fused, no buffer donation", lambda cfg: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg), donate=False)),
    "epoch_jit": (
        "fused, 20 steps per call (lax.scan over batches), per step",
        lambda cfg: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg), steps_per_call=20),
    ),
}
PER_CALL_STEPS = {"epoch_jit": 20}


KEEP_ENV = "LSTM_SPEED_KEEP_FREED_MEMORY"  # set for a worker: lstm_jax.training.keep_freed_memory() first


def worker(name: str, config: str, steps: int) -> None:
    """Measure one variant in this (fresh) process; print JSON {compile, times} on the last line."""
    if os.environ.get(KEEP_ENV) == "1" and not keep_freed_memory():
        raise SystemExit(f"worker {name}: keep_freed_memory() could not set glibc's malloc here")
    step = VARIANTS[name][1](sm.CONFIGS[config])
    compile_s = step.compile()
    for _ in range(2):
        step.run()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step.run()
        times.append((time.perf_counter() - t0) / PER_CALL_STEPS.get(name, 1))
    package = str(Path(native.__file__).parent)
    loaded = native.available() if name == "native" else None  # else "native" would time its fallback
    print(json.dumps({"compile": compile_s, "times": times, "package": package, "native_loaded": loaded}))


def run_in_processes(names, config: str, steps: int, cache: str, rounds: int = 4, extra_env=None) -> dict:
    """name -> {"times": [...], "compiles": [...]}: each name measured in `rounds` fresh
    processes, the names taking turns, so a drift of the machine's speed hits all of them."""
    per_round = math.ceil(steps / rounds)
    results = {name: {"times": [], "compiles": []} for name in names}
    for _ in range(rounds):
        for name in names:
            env = {**os.environ, runtime.CACHE_ENV: cache, **(extra_env or {}).get(name, {})}
            variant = name.split(":")[0]  # "lstm_jax:eigen" is lstm_jax under other XLA flags
            calls = max(1, per_round // PER_CALL_STEPS.get(variant, 1))
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", variant, "--configs", config, "--steps", str(calls)],
                env=env,
                capture_output=True,
                text=True,
            )
            if proc.returncode:
                raise SystemExit(f"worker {name} (config {config}) failed:\n{proc.stderr[-2000:]}")
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            results[name]["times"] += out["times"]
            results[name]["compiles"].append(out["compile"])
            results[name]["package"] = out["package"]
            if variant == "native" and not out["native_loaded"]:
                raise SystemExit(f"worker {name} (config {config}): the native kernels did not load there")
    return results


def section_train(configs, steps: int, peak: float, gpu: bool, compare: str | None = None) -> None:
    names = ["lstm_jax", "native", "flax"] if native.available() else ["lstm_jax", "flax"]
    labels = {name: VARIANTS[name][0] for name in VARIANTS}
    extra_env = {}
    if compare is not None:  # a second "native" row, from another copy of the package
        names.insert(names.index("flax"), "native:compared")
        labels["native:compared"] = f'implementation="native" from {compare}'
        search_path = [compare, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        extra_env["native:compared"] = {"PYTHONPATH": os.pathsep.join(search_path)}
    kept = {"native:kept": "native", "torch:kept": "torch.nn.LSTM cpu"}  # the same malloc settings for both
    if "native" in names:
        names.insert(names.index("native") + 1, "native:kept")
    try:
        import torch

        names += ["torch", "torch:kept"]
        if gpu and torch.cuda.is_available():
            names.append("torch_cuda")
    except ImportError:
        pass
    if gpu:
        names.insert(2, "jax_cudnn")
    for name in kept:
        labels[name] = f"{kept[name]}, freed memory kept (lstm_jax.training.keep_freed_memory())"
        extra_env[name] = {KEEP_ENV: "1"}
    for key in configs:
        cfg = sm.CONFIGS[key]
        n_steps = steps if key != "b" else min(steps, 20)
        print(
            f"\n## train step {cfg.describe()}: {cfg.train_flops() / 1e9:.2f} GFLOP per step, median of "
            f"{n_steps} steps; each implementation in 4 fresh processes, taking turns, 2 warm-up steps each",
            flush=True,
        )
        cache = tempfile.mkdtemp(prefix="lstm_jax_bench_cache_")
        if compare is not None:  # its own compilation cache, so that its "compile cold" is cold
            extra_env["native:compared"][runtime.CACHE_ENV] = tempfile.mkdtemp(prefix="lstm_jax_bench_cache_")
        res = run_in_processes(names, key, n_steps, cache, extra_env=extra_env)
        if compare is not None:
            imported = Path(res["native:compared"]["package"]).resolve()
            if not imported.is_relative_to(Path(compare).resolve()):
                raise SystemExit(f"--compare: expected lstm_jax imported from {compare}, found {imported}")
        med = {n: float(np.median(r["times"])) for n, r in res.items()}
        print(
            "| implementation | median ms | min ms | tokens/s | GFLOP/s | % of peak | compile cold s "
            "| compile warm s | " + " | ".join(f"x {n}" for n in names) + " |"
        )
        print("|" + "---|" * (8 + len(names)))
        for name, r in res.items():
            gflops = cfg.train_flops() / med[name] / 1e9
            ratios = " | ".join(f"{med[name] / med[other]:.2f}" for other in names)
            jax_impl = not name.startswith("torch")
            compile_cells = f"{r['compiles'][0]:.2f} | {np.median(r['compiles'][1:]):.2f}" if jax_impl else "- | -"
            print(
                f"| {labels[name]} | {med[name] * 1e3:.1f} | {min(r['times']) * 1e3:.1f} | "
                f"{cfg.steps * cfg.batch / med[name]:,.0f} | {gflops:.1f} | {100 * gflops / peak:.0f}% | "
                f"{compile_cells} | {ratios} |"
            )
        print(
            "(x NAME: this row's median time / NAME's; below 1 is faster than NAME. compile: the first "
            "process compiles into an empty persistent cache, the later ones load from it)"
        )


def section_techniques(steps: int) -> None:
    cfg = sm.CONFIGS["a"]
    print(
        f"\n## techniques, config {cfg.describe()}: median train-step ms of {steps} steps, "
        f"each variant in 4 fresh processes, taking turns",
        flush=True,
    )
    names = [
        "flax",
        "scan",
        "lstm_jax",
        "unroll1",
        "unroll4",
        "groups2",
        "no_donation",
        "epoch_jit",
        "lstm_jax:kept",
        "lstm_jax:eigen",
        "lstm_jax:single_thread_eigen",
    ]
    flags = {
        "lstm_jax:eigen": "--xla_cpu_experimental_ynn_fusion_type=",
        "lstm_jax:single_thread_eigen": "--xla_cpu_multi_thread_eigen=false",
    }
    env = {n: {"XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {f}".strip()} for n, f in flags.items()}
    env["lstm_jax:kept"] = {KEEP_ENV: "1"}
    res = run_in_processes(names, "a", steps, tempfile.mkdtemp(prefix="lstm_jax_bench_cache_"), extra_env=env)
    labels = {
        "lstm_jax:kept": "fused, freed memory kept (lstm_jax.training.keep_freed_memory())",
        **{n: f"fused, XLA_FLAGS {f}" for n, f in flags.items()},
    }
    base = float(np.median(res["lstm_jax"]["times"]))
    print("| variant | median ms | x default |\n|---|---|---|")
    for name, r in res.items():
        m = float(np.median(r["times"]))
        print(f"| {labels.get(name) or VARIANTS[name][0]} | {m * 1e3:.1f} | {m / base:.2f} |")


def section_kernels() -> None:
    """The recurrent matmul of config (a) alone: XLA's kernel vs torch's (MKL) vs numpy's."""
    batch, hidden, n = 64, 256, 200
    h, w = jnp.ones((batch, hidden)), jnp.full((hidden, 4 * hidden), 1e-3)
    loop = jax.jit(lambda h, w: jax.lax.fori_loop(0, n, lambda i, h: (h @ w)[:, :hidden], h))
    jax.block_until_ready(loop(h, w))
    flops = 2 * batch * hidden * 4 * hidden
    rows = {"jax (XLA CPU), in a fori_loop": median_time(lambda: jax.block_until_ready(loop(h, w)), 10)[0] / n}
    a, b = np.ones((batch, hidden), np.float32), np.full((hidden, 4 * hidden), 1e-3, np.float32)
    out = np.empty((batch, 4 * hidden), np.float32)

    def numpy_loop():
        for _ in range(n):
            np.matmul(a, b, out=out)

    rows["numpy (OpenBLAS)"] = median_time(numpy_loop, 10)[0] / n
    try:
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)

        def torch_loop():
            for _ in range(n):
                torch.mm(ta, tb)

        rows["torch.mm (CPU build)"] = median_time(torch_loop, 10)[0] / n
    except ImportError:
        pass
    print(
        f"\n## kernels: one recurrent matmul [{batch},{hidden}] x [{hidden},{4 * hidden}] "
        f"({flops / 1e6:.1f} MFLOP), median per call\n| library | us | GFLOP/s |\n|---|---|---|"
    )
    for name, sec in rows.items():
        print(f"| {name} | {sec * 1e6:.0f} | {flops / sec / 1e9:.0f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="a,b,c", help="comma-separated subset of a,b,c (default: all)")
    parser.add_argument(
        "--sections",
        default="train,kernels,techniques,generation,memory",
        help="comma-separated subset of train,kernels,techniques,generation,memory",
    )
    parser.add_argument("--steps", type=int, default=32, help="timed steps per figure (at least 20 for the table)")
    parser.add_argument("--gen-length", type=int, default=300, help="characters per generation run")
    parser.add_argument(
        "--compare",
        metavar="DIR",
        help='train section: also time implementation="native" from another copy of the package, '
        "DIR/lstm_jax with its kernels built (e.g. `git worktree add DIR COMMIT`, then in DIR "
        "`python setup.py build_ext --inplace`), in the same alternating rounds",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in sm.CONFIGS]
    if unknown:
        parser.error(f"--configs: expected a subset of a,b,c, found {','.join(unknown)}")
    if args.compare is not None and not (Path(args.compare) / "lstm_jax" / "native.py").is_file():
        parser.error(f"--compare: expected a folder holding lstm_jax/recurrence/_native.py, found {args.compare!r}")
    if args.worker:
        runtime.enable_compilation_cache()  # the folder the parent passed in the environment
        worker(args.worker, configs[0], args.steps)
        return 0
    print_machine()
    peak = matmul_peak()
    gpu = jax.default_backend() == "gpu"
    sections = args.sections.split(",")
    if "train" in sections:
        section_train(configs, args.steps, peak, gpu, args.compare)
    if "kernels" in sections:
        section_kernels()
    if "generation" in sections:
        section_generation(args.gen_length)
    if "memory" in sections:
        section_memory()
    if "techniques" in sections:
        section_techniques(args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
