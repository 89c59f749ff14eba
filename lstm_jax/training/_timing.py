"""Compile time measured apart from run time, so stage logs can say where the time went."""

from __future__ import annotations

import time

import jax


def _signature(args) -> tuple:
    leaves, treedef = jax.tree.flatten(args)
    return (treedef, tuple((getattr(x, "shape", None), str(getattr(x, "dtype", type(x)))) for x in leaves))


class Timed:
    """Wrap a jitted function: compile ahead of time once per input signature, then run.

    `compile_s` and `run_s` accumulate the seconds spent in each. Outputs are waited for, so
    `run_s` is real compute time, not dispatch time.
    """

    def __init__(self, jitted):
        self.jitted = jitted
        self.compiled = {}
        self.compile_s = 0.0
        self.run_s = 0.0

    def __call__(self, *args):
        sig = _signature(args)
        if sig not in self.compiled:
            start = time.perf_counter()
            self.compiled[sig] = self.jitted.lower(*args).compile()
            self.compile_s += time.perf_counter() - start
        start = time.perf_counter()
        out = jax.block_until_ready(self.compiled[sig](*args))
        self.run_s += time.perf_counter() - start
        return out


def report(timed: dict[str, Timed]) -> str:
    """One log line: total compile and run seconds, then per function."""
    compile_s = sum(t.compile_s for t in timed.values())
    run_s = sum(t.run_s for t in timed.values())
    parts = ", ".join(f"{k} {t.compile_s:.1f}s+{t.run_s:.1f}s" for k, t in timed.items())
    return f"time: compiling {compile_s:.1f}s, running {run_s:.1f}s ({parts}; compile+run)"
