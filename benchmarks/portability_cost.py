"""What the portability pins cost (issue 14): the train step of config (a) with XLA left to
choose (the library's default), under the pins every pipeline stage runs with
(`lstm_jax.portability`: AVX2 cap, Eigen's own kernel for every product, a 2-thread pool),
the same pins with oneDNN's block kernel (the pins until 2026-11-29), and with a 1-thread
pool (the other way to make the core count not matter, rejected for its cost).

    python benchmarks/portability_cost.py            # ~3 min on 2 CPU cores
    python benchmarks/portability_cost.py --steps 40 --configs a,b

Each variant runs in its own fresh processes, 4 rounds taking turns (lstm_speed.run_in_processes);
medians of the per-step times. On a machine with 2 schedulable cores the 2-thread pin is XLA's
own choice; with more cores it is where the pins cost most.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lstm_speed  # noqa: E402
import speed_models as sm  # noqa: E402

from lstm_jax import portability
from lstm_jax.recurrence import native  # noqa: E402


def variants() -> dict[str, dict]:
    """Variant name -> environment: name "lstm_jax:<how>" runs lstm_speed's lstm_jax worker."""
    user = os.environ.get("XLA_FLAGS", "")
    onednn = {"TENSORFLOW_USE_CUSTOM_CONTRACTION_KERNEL": "true"}  # jaxlib's default, whatever the shell says
    flags_and_threads = {"XLA_FLAGS": portability.pinned_xla_flags(user), portability.THREADS_ENV: "2", **onednn}
    pinned = {**flags_and_threads, **portability.PINNED_ENV}
    return {
        "lstm_jax": onednn,
        "lstm_jax:portable": pinned,
        "lstm_jax:onednn_blocks": flags_and_threads,
        "lstm_jax:one_thread": {**pinned, portability.THREADS_ENV: "1"},
        # The native recurrence under the pins: its own kernels, whose bits follow no CPU feature.
        "native:portable": pinned,
    }


LABELS = {
    "lstm_jax": "XLA's own choices (LSTM_JAX_PORTABLE=0)",
    "lstm_jax:portable": "the pins (pipeline default): AVX2, Eigen's kernel, 2 threads",
    "lstm_jax:onednn_blocks": "the pins before 2026-11-29: oneDNN's block kernel (CPU-dependent bits)",
    "lstm_jax:one_thread": "the pins with a 1-thread pool (rejected)",
    "native:portable": 'implementation="native" under the pins',
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="a", help="comma-separated subset of a,b,c (default: a)")
    parser.add_argument("--steps", type=int, default=32, help="timed steps per variant (default: 32)")
    args = parser.parse_args(argv)
    lstm_speed.print_machine()
    env = variants()
    if not native.available():
        print(f'implementation="native" is left out: {native.unavailable_reason()}')
        del env["native:portable"]
    for config in args.configs.split(","):
        cache = tempfile.mkdtemp(prefix="lstm_jax_pins_cache_")
        res = lstm_speed.run_in_processes(list(env), config, args.steps, cache, extra_env=env)
        base = float(np.median(res["lstm_jax"]["times"]))
        print(f"\n## config {sm.CONFIGS[config].describe()}: median train-step ms")
        print("| variant | median ms | x XLA's own choices |\n|---|---|---|")
        for name, r in res.items():
            m = float(np.median(r["times"]))
            print(f"| {LABELS[name]} | {m * 1e3:.1f} | {m / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
