"""What each layer option costs: forward + backward time of one layer, relative to the plain one.

    python benchmarks/layer_options.py                     # B=32, T=64, F=32, H=128; ~2-4 min on 2 cores
    python benchmarks/layer_options.py --batch 16 --seq 32 --hidden 64 --repeats 20
    python benchmarks/layer_options.py --only plain --only GRU   # options whose name contains one
    python benchmarks/layer_options.py --only plain --only native --batch 128 --seq 25 --hidden 512

One line per option: median seconds of a jitted value-and-gradient step (loss: the sum of
squared outputs, gradients for the parameters and the inputs), after warm-up, and its ratio to
the plain layer (fused path, float32). Every option runs in training mode (deterministic=False)
with the same 'dropout' key, so random regularisers draw their masks inside the timed step.
Rounds alternate between options, so a slow spell of the machine hits them all alike.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import LSTM
from lstm_jax.recurrence import native
from lstm_jax.nn import GRU
from lstm_jax.portability import cpu_model

OPTIONS = {
    "plain (fused, float32)": (LSTM, {}),
    "implementation=scan": (LSTM, {"implementation": "scan"}),
    "implementation=native": (LSTM, {"implementation": "native"}),
    "reset (5% of steps)": (LSTM, {}),
    "reset, scan": (LSTM, {"implementation": "scan"}),
    "reset, native": (LSTM, {"implementation": "native"}),
    "dtype=bfloat16": (LSTM, {"dtype": "bfloat16"}),
    "dtype=bfloat16, scan": (LSTM, {"dtype": "bfloat16", "implementation": "scan"}),
    "dtype=float16": (LSTM, {"dtype": "float16"}),
    "recurrent_dropout=0.25": (LSTM, {"recurrent_dropout": 0.25}),
    "recurrent_dropout=0.25, native": (LSTM, {"recurrent_dropout": 0.25, "implementation": "native"}),
    "weight_drop=0.5": (LSTM, {"weight_drop": 0.5}),
    "weight_drop=0.5, scan": (LSTM, {"weight_drop": 0.5, "implementation": "scan"}),
    "zoneout=(0.5, 0.05) (fused)": (LSTM, {"zoneout": (0.5, 0.05)}),
    "zoneout=(0.5, 0.05), scan": (LSTM, {"zoneout": (0.5, 0.05), "implementation": "scan"}),
    "layer_norm (scan)": (LSTM, {"layer_norm": True}),
    "GRU (fused)": (GRU, {}),
    "GRU, scan": (GRU, {"implementation": "scan"}),
}

BASE = "plain (fused, float32)"  # always measured: the reference of the ratios


def make_step(cls, kwargs, x, reset):
    layer = cls(hidden_size=ARGS.hidden, **kwargs)
    params = layer.init(jax.random.key(0), x)
    rngs = {"dropout": jax.random.key(1)}

    @jax.jit
    def step(params, x):
        def loss(p, x):
            out, _ = layer.apply(p, x, reset=reset, deterministic=False, rngs=rngs)
            return jnp.sum(jnp.square(out.astype(jnp.float32)))

        return jax.value_and_grad(loss, argnums=(0, 1))(params, x)

    jax.block_until_ready(step(params, x))  # compile
    return lambda: jax.block_until_ready(step(params, x))


def main() -> None:
    x = jax.random.normal(jax.random.key(2), (ARGS.batch, ARGS.seq, ARGS.features))
    resets = jax.random.bernoulli(jax.random.key(3), 0.05, (ARGS.batch, ARGS.seq))
    chosen = [n for n in OPTIONS if n == BASE or not ARGS.only or any(s in n for s in ARGS.only)]
    if not native.available():  # else its rows would silently time "fused" (its fallback)
        print(f'implementation="native" rows left out: {native.unavailable_reason()}')
        chosen = [n for n in chosen if "native" not in n]
    steps = {name: make_step(*OPTIONS[name], x, resets if name.startswith("reset") else None) for name in chosen}
    times = {name: [] for name in steps}
    for _ in range(ARGS.warmup):
        for run in steps.values():
            run()
    for _ in range(ARGS.repeats):
        for name, run in steps.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, jax {jax.__version__}; "
        f"B={ARGS.batch} T={ARGS.seq} F={ARGS.features} H={ARGS.hidden}, one layer, median of {ARGS.repeats}"
    )
    base = float(np.median(times[BASE]))
    for name, ts in times.items():
        median = float(np.median(ts))
        print(f"{name:30s} {median * 1e3:8.2f} ms  {median / base:5.2f}x plain")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--only", action="append", help="measure the options whose name contains this (repeatable)")
    ARGS = parser.parse_args()
    main()
