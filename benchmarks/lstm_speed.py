"""LSTM speed, side by side in one run: lstm_jax vs flax OptimizedLSTMCell vs torch.nn.LSTM.

    python benchmarks/lstm_speed.py            # everything (make bench); ~10 min on 2 CPU cores
    python benchmarks/lstm_speed.py --configs a --sections train --steps 20

Sections:
  train       configs (a) (b) (c): median train-step time (forward, backward, Adam) after
              warm-up, tokens/s, achieved GFLOP/s, share of the matmul peak measured in this run,
              ratios to each peer, and compile time cold and from a warm persistent cache;
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

from lstm_jax import runtime  # noqa: E402


def median_time(fn, steps: int, warmup: int = 3) -> tuple[float, float]:
    """(median, min) seconds of `fn()` over `steps` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times))


def interleaved_times(runs: dict, steps: int, rounds: int = 4, warmup: int = 2) -> dict:
    """name -> (median, min) seconds per call, timing the callables in turns: `rounds` rounds
    of `warmup` untimed + steps / rounds timed calls each, so slow drifts of a shared machine
    affect every implementation alike."""
    per_round = -(-steps // rounds)
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            for _ in range(warmup):
                fn()
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {name: (float(np.median(t)), float(np.min(t))) for name, t in times.items()}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def print_machine() -> None:
    import flax
    import optax

    versions = f"jax {jax.__version__}, flax {flax.__version__}, optax {optax.__version__}"
    try:
        import torch

        versions += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        versions += ", torch not installed"
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"jax device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
    print(f"versions: {versions}")
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


def implementations(cfg: sm.Config, gpu: bool):
    """name -> zero-arg builder of a Step."""
    impls = {
        "lstm_jax": lambda: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg)),
        "flax OptimizedLSTMCell": lambda: sm.jax_step(cfg, sm.flax_rnn(cfg)),
    }
    if gpu:
        impls["jax.experimental.rnn (cuDNN)"] = lambda: sm.jax_step(cfg, sm.jax_cudnn_rnn(cfg))
    try:
        import torch

        impls["torch.nn.LSTM cpu"] = lambda: sm.torch_step(cfg, "cpu")
        if gpu and torch.cuda.is_available():
            impls["torch.nn.LSTM cuda (cuDNN)"] = lambda: sm.torch_step(cfg, "cuda")
    except ImportError:
        pass
    return impls


def compile_cold_and_warm(build) -> tuple[object, float, float]:
    """Build and compile twice: into an empty persistent cache, then after dropping the
    in-memory caches so the second compile is served from disk."""
    step = build()
    cold = step.compile()
    jax.clear_caches()
    step = build()
    warm = step.compile()
    return step, cold, warm


def section_train(configs, steps: int, peak: float, gpu: bool) -> None:
    for key in configs:
        cfg = sm.CONFIGS[key]
        n_steps = max(steps if key != "b" else min(steps, 20), 1)
        print(f"\n## train step {cfg.describe()}: {cfg.train_flops() / 1e9:.2f} GFLOP per step, "
              f"median of {n_steps} steps, implementations taking turns (4 rounds, 2 warm-up steps each)")
        steps_, compile_s = {}, {}
        for name, build in implementations(cfg, gpu).items():
            steps_[name], *compile_s[name] = compile_cold_and_warm(build)
        timed = interleaved_times({name: st.run for name, st in steps_.items()}, n_steps)
        rows = {name: (*timed[name], *compile_s[name]) for name in steps_}
        del steps_
        names = list(rows)
        header = ("| implementation | median ms | min ms | tokens/s | GFLOP/s | % of peak | compile cold s "
                  "| compile warm s | " + " | ".join(f"x {n.split()[0]}" for n in names) + " |")
        print(header)
        print("|" + "---|" * (8 + len(names)))
        for name, (med, best, cold, warm) in rows.items():
            gflops = cfg.train_flops() / med / 1e9
            ratios = " | ".join(f"{med / rows[other][0]:.2f}" for other in names)
            compile_cells = (f"{cold:.2f} | {warm:.2f}" if cold else "- | -")
            print(f"| {name} | {med * 1e3:.1f} | {best * 1e3:.1f} | {cfg.steps * cfg.batch / med:,.0f} | "
                  f"{gflops:.1f} | {100 * gflops / peak:.0f}% | {compile_cells} | {ratios} |")
        print("(x NAME: this row's median time / NAME's; below 1 is faster than NAME)")


def section_techniques(steps: int) -> None:
    cfg = sm.CONFIGS["a"]
    print(f"\n## techniques, config {cfg.describe()}: median train-step ms, {steps} steps")
    variants = {
        "flax OptimizedLSTMCell: per-step input matmul, autodiff": lambda: sm.jax_step(cfg, sm.flax_rnn(cfg)),
        "lstm_jax scan: input projection hoisted as one matmul, fused gates, autodiff":
            lambda: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg, implementation="scan")),
        "lstm_jax fused (default): one [x_t, h] matmul per step, custom VJP, unroll=2":
            lambda: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg)),
        "fused, unroll=1": lambda: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg, unroll=1)),
        "fused, unroll=4": lambda: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg, unroll=4)),
        "fused, batch_groups=2": lambda: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg, batch_groups=2)),
        "fused, no buffer donation": lambda: sm.jax_step(cfg, sm.lstm_jax_rnn(cfg), donate=False),
    }
    built = {}
    for name, build in variants.items():
        built[name] = build()
        built[name].compile()
    timed = interleaved_times({name: st.run for name, st in built.items()}, steps)
    del built
    print("| variant | median ms |\n|---|---|")
    for name, (med, _) in timed.items():
        print(f"| {name} | {med * 1e3:.1f} |", flush=True)
    epoch = sm.jax_step(cfg, sm.lstm_jax_rnn(cfg), steps_per_call=20)
    epoch.compile()
    per_step = median_time(epoch.run, max(steps // 4, 3), warmup=1)[0] / 20
    print(f"| fused, 20 steps in one jit (lax.scan over batches), per step | {per_step * 1e3:.1f} |")
    for label, extra_args, flags in (
            ("glibc's default allocator (no keep_freed_memory)", ["--default-allocator"], ""),
            ("XLA_FLAGS --xla_cpu_experimental_ynn_fusion_type= (Eigen dots)", [],
             "--xla_cpu_experimental_ynn_fusion_type="),
            ("XLA_FLAGS --xla_cpu_multi_thread_eigen=false", [], "--xla_cpu_multi_thread_eigen=false")):
        env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()}
        out = subprocess.run([sys.executable, __file__, "--single-step", "--steps", str(steps), *extra_args],
                             env=env, capture_output=True, text=True, check=True).stdout
        print(f"| fused, {label}, separate process | {json.loads(out.splitlines()[-1])['ms']:.1f} |")


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
    print(f"\n## kernels: one recurrent matmul [{batch},{hidden}] x [{hidden},{4 * hidden}] "
          f"({flops / 1e6:.1f} MFLOP), median per call\n| library | us | GFLOP/s |\n|---|---|---|")
    for name, sec in rows.items():
        print(f"| {name} | {sec * 1e6:.0f} | {flops / sec / 1e9:.0f} |")


def section_generation(length: int) -> None:
    from lstm_jax.generate import make_sampler
    from lstm_jax.models import CharLM

    cfg = sm.CONFIGS["a"]
    model = CharLM(vocab_size=cfg.vocab, embed_dim=cfg.embed, hidden_size=cfg.hidden)
    window = 50
    seed = jnp.asarray(np.random.default_rng(0).integers(2, cfg.vocab, (1, window)), jnp.int32)
    params = model.init(jax.random.key(0), seed)["params"]
    print(f"\n## generation: {length} characters from a {window}-character seed, batch 1, greedy, "
          f"char model (a)")

    predict = jax.jit(lambda p, w: jnp.argmax(model.apply({"params": p}, w)[0][0, -1]))

    def tutorial():  # re-run the last 50 characters through predict for every new character
        text = list(np.asarray(seed[0]))
        for _ in range(length):
            text.append(int(predict(params, jnp.asarray([text[-window:]], jnp.int32))))
        return text

    one_step = jax.jit(lambda p, tok, state: model.apply({"params": p}, tok, state))

    def python_loop():  # one jitted single step per character, the state carried
        logits, state = one_step(params, seed, None)
        token, out = jnp.argmax(logits[:, -1], -1)[:, None], []
        for _ in range(length):
            out.append(token)
            logits, state = one_step(params, token.astype(jnp.int32), state)
            token = jnp.argmax(logits[:, -1], -1)[:, None]
        return jax.block_until_ready(out[-1])

    sampler = make_sampler(model, length)
    seed_mask = jnp.ones(seed.shape, bool)

    def compiled():
        return jax.block_until_ready(sampler(params, seed, seed_mask, jax.random.key(0)))

    results = {}
    for name, fn in [("tutorial: predict on the 50-char window per character", tutorial),
                     ("Python loop of a jitted single step", python_loop),
                     ("lstm_jax compiled sampler (one jit, lax.scan)", compiled)]:
        fn()
        results[name] = length / median_time(fn, 5, warmup=1)[0]
    base = results["tutorial: predict on the 50-char window per character"]
    print("| method | chars/s | x tutorial |\n|---|---|---|")
    for name, cps in results.items():
        print(f"| {name} | {cps:,.0f} | {cps / base:.1f} |")


def section_memory(steps_list=(250, 500, 1000, 2000)) -> None:
    from lstm_jax.long_sequences import remat_segments
    from lstm_jax import LSTM
    import optax

    cfg = sm.CONFIGS["b"]
    print(f"\n## long sequences: XLA scratch memory of one train step (grad + Adam), input {cfg.features}, "
          f"hidden {cfg.hidden}, B={cfg.batch}")
    layer = LSTM(hidden_size=cfg.hidden)
    tx = optax.adam(1e-3)

    def build(steps, segment):
        x = jnp.zeros((cfg.batch, steps, cfg.features))
        y = jnp.zeros((cfg.batch, steps), jnp.int32)
        lstm_params = layer.init(jax.random.key(0), x[:, :2])
        w = jnp.zeros((cfg.hidden, cfg.classes))
        params = {"lstm": lstm_params, "head": w}

        def loss(p):
            def segment_loss(state, xy):
                xs, ys = xy
                out, state = layer.apply(p["lstm"], xs, state)
                return state, optax.softmax_cross_entropy_with_integer_labels(out @ p["head"], ys).sum()

            state = layer.initial_state(cfg.batch)
            if segment:
                return remat_segments(segment_loss, state, (x, y), segment)[1].sum()
            return segment_loss(state, (x, y))[1]

        def step(p, o):
            g = jax.grad(loss)(p)
            u, o = tx.update(g, o, p)
            return optax.apply_updates(p, u), o

        o = tx.init(params)
        exe = jax.jit(step, donate_argnums=(0, 1)).lower(params, o).compile()
        state = {"p": params, "o": o}

        def run():
            state["p"], state["o"] = exe(state["p"], state["o"])
            jax.block_until_ready(state["o"])

        return exe.memory_analysis().temp_size_in_bytes, run

    print("| T | full backprop MiB | segments | remat MiB | remat / full |\n|---|---|---|---|---|")
    timings = {}
    for steps in steps_list:
        divisors = [d for d in range(1, steps + 1) if steps % d == 0]
        segment = min(divisors, key=lambda d: abs(d - np.sqrt(steps)))
        full, run_full = build(steps, 0)
        remat, run_remat = build(steps, segment)
        if steps == 1000:
            timings = {"full": median_time(run_full, 5, 1)[0], "remat": median_time(run_remat, 5, 1)[0]}
        print(f"| {steps} | {full / 2**20:.1f} | {steps // segment} x {segment} | {remat / 2**20:.1f} | "
              f"{remat / full:.2f} |")
    if timings:
        print(f"T=1000 step time: full {timings['full'] * 1e3:.0f} ms, remat {timings['remat'] * 1e3:.0f} ms "
              f"(x{timings['remat'] / timings['full']:.2f}: one extra forward pass)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="a,b,c", help="comma-separated subset of a,b,c (default: all)")
    parser.add_argument("--sections", default="train,kernels,techniques,generation,memory",
                        help="comma-separated subset of train,kernels,techniques,generation,memory")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per figure (at least 20 for the table)")
    parser.add_argument("--gen-length", type=int, default=300, help="characters per generation run")
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc's malloc settings alone (default: lstm_jax.runtime.keep_freed_memory)")
    parser.add_argument("--single-step", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in sm.CONFIGS]
    if unknown:
        parser.error(f"--configs: expected a subset of a,b,c, found {','.join(unknown)}")
    if not args.default_allocator:
        runtime.keep_freed_memory()  # as the pipeline stages do; applies to every implementation
    if args.single_step:  # one figure in a fresh process (for XLA flag / allocator variants)
        step = sm.jax_step(sm.CONFIGS["a"], sm.lstm_jax_rnn(sm.CONFIGS["a"]))
        step.compile()
        print(json.dumps({"ms": median_time(step.run, args.steps)[0] * 1e3}))
        return 0
    runtime.enable_compilation_cache(tempfile.mkdtemp(prefix="lstm_jax_bench_cache_"))  # starts empty
    print_machine()
    print(f"allocator: {'glibc default' if args.default_allocator else 'keep_freed_memory (as the stages)'}")
    peak = matmul_peak()
    gpu = jax.default_backend() == "gpu"
    sections = args.sections.split(",")
    if "train" in sections:
        section_train(configs, args.steps, peak, gpu)
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
