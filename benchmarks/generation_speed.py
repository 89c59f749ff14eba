"""The `generation` section of `lstm_speed.py`: characters per second of three ways to sample
greedily from config (a)'s char model, batch 1: the tutorial's (the whole 50-character window
through the model for every new character), a Python loop of a jitted single step carrying the
state, and lstm_jax's compiled sampler (one jit, `lax.scan`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import speed_models as sm
from speed_models import median_time


def section_generation(length: int) -> None:
    from lstm_jax.training import make_sampler
    from lstm_jax.nn import CharLM

    cfg = sm.CONFIGS["a"]
    model = CharLM(vocab_size=cfg.vocab, embed_dim=cfg.embed, hidden_size=cfg.hidden)
    window = 50
    seed = jnp.asarray(np.random.default_rng(0).integers(2, cfg.vocab, (1, window)), jnp.int32)
    params = model.init(jax.random.key(0), seed)["params"]
    print(f"\n## generation: {length} characters from a {window}-character seed, batch 1, greedy, char model (a)")

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
    for name, fn in [
        ("tutorial: predict on the 50-char window per character", tutorial),
        ("Python loop of a jitted single step", python_loop),
        ("lstm_jax compiled sampler (one jit, lax.scan)", compiled),
    ]:
        fn()
        results[name] = length / median_time(fn, 5, warmup=1)[0]
    base = results["tutorial: predict on the 50-char window per character"]
    print("| method | chars/s | x tutorial |\n|---|---|---|")
    for name, cps in results.items():
        print(f"| {name} | {cps:,.0f} | {cps / base:.1f} |")
