"""The `memory` section of `lstm_speed.py`: XLA's scratch memory of one train step against the
sequence length T, with full backprop and with segment-wise rematerialisation
(`lstm_jax.training.remat_segments`), at config (b)'s shapes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import speed_models as sm
from speed_models import median_time


def section_memory(steps_list=(250, 500, 1000, 2000)) -> None:
    from lstm_jax.training import remat_segments
    from lstm_jax import LSTM
    import optax

    cfg = sm.CONFIGS["b"]
    print(
        f"\n## long sequences: XLA scratch memory of one train step (grad + Adam), input {cfg.features}, "
        f"hidden {cfg.hidden}, B={cfg.batch}"
    )
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
        print(
            f"| {steps} | {full / 2**20:.1f} | {steps // segment} x {segment} | {remat / 2**20:.1f} | "
            f"{remat / full:.2f} |"
        )
    if timings:
        print(
            f"T=1000 step time: full {timings['full'] * 1e3:.0f} ms, remat {timings['remat'] * 1e3:.0f} ms "
            f"(x{timings['remat'] / timings['full']:.2f}: one extra forward pass)"
        )
