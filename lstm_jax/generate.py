"""Compiled sampling: warm the LSTM state up on a seed, then sample one token per scan step.

The whole loop is one `jax.jit`: the seed goes through the model once, and each new token is
fed back with the carried state, so no window is ever re-run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstm_jax.vocab import PAD_ID


def sample_logits(logits, key, temperature: float = 0.0, top_k: int = 0):
    """Next tokens int32[B] from logits float32[B, V]: greedy when temperature is 0, else
    sampled from softmax(logits / temperature), restricted to the top_k largest when top_k > 0.
    PAD is never produced."""
    logits = logits.at[:, PAD_ID].set(-jnp.inf)
    if temperature == 0.0:
        return jnp.argmax(logits, -1).astype(jnp.int32)
    logits = logits / temperature
    if top_k > 0:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits).astype(jnp.int32)


def make_sampler(model, length: int, temperature: float = 0.0, top_k: int = 0):
    """A jitted `(params, seed int32[B, S], key) -> int32[B, length]` for a token model
    called as `logits, state = model.apply(variables, tokens, state)`."""

    def run(params, seed, key):
        logits, state = model.apply({"params": params}, seed)

        def step(carry, k):
            last, state = carry
            token = sample_logits(last, k, temperature, top_k)
            logits, state = model.apply({"params": params}, token[:, None], state)
            return (logits[:, 0], state), token

        _, tokens = jax.lax.scan(step, (logits[:, -1], state), jax.random.split(key, length))
        return tokens.T

    return jax.jit(run)


def generate_text(model, params, vocab, seed_text: str, length: int, *, temperature: float = 0.0,
                  top_k: int = 0, rng_seed: int = 0) -> str:
    """`length` characters sampled after `seed_text` (the seed itself is not repeated)."""
    seed = jnp.asarray(vocab.encode(seed_text))[None, :]
    tokens = make_sampler(model, length, temperature, top_k)(params, seed, jax.random.key(rng_seed))
    return vocab.decode(tokens[0])
