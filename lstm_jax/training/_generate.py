"""Compiled sampling: warm the LSTM state up on a seed, then sample one token per scan step.

The whole loop is one `jax.jit`: the seed goes through the model once, and each new token is
fed back with the carried state, so no window is ever re-run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax.errors import ArgumentError
from lstm_jax.limits import MAX_TEMPERATURE, MIN_TEMPERATURE
from lstm_jax.io._vocab import PAD_ID


def sample_logits(logits, key, temperature: float = 0.0, top_k: int = 0):
    """Next tokens int32[B] from logits float32[B, V]: greedy when temperature is 0, else
    sampled from softmax(logits / temperature), restricted to the top_k largest when top_k > 0.
    PAD is never produced."""
    logits = logits.at[:, PAD_ID].set(-jnp.inf)
    if temperature == 0.0:
        return jnp.argmax(logits, -1).astype(jnp.int32)
    logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits).astype(jnp.int32)


def make_sampler(model, length: int, temperature: float = 0.0, top_k: int = 0):
    """A jitted `(params, seed int32[B, S], seed_mask bool[B, S], key) -> int32[B, length]`.

    `model` is a token model called as `logits, state = model.apply(variables, tokens, state,
    mask=...)`. Seeds are left-padded with `seed_mask` False on the padding, so every row's
    last seed step is real and padding never touches the state. Each sampling step feeds one
    token and carries the state: O(1) work per token.
    """

    _check_sampling(length, temperature, top_k)

    def run(params, seed, seed_mask, key):
        logits, state = model.apply({"params": params}, seed, mask=seed_mask)

        def step(carry, k):
            last, state = carry
            token = sample_logits(last, k, temperature, top_k)
            logits, state = model.apply({"params": params}, token[:, None], state)
            return (logits[:, 0], state), token

        _, tokens = jax.lax.scan(step, (logits[:, -1], state), jax.random.split(key, length))
        return tokens.T

    return jax.jit(run)


def _check_sampling(length: int, temperature: float, top_k: int) -> None:
    """Sampling arguments that would silently go wrong: a NaN or infinite temperature gives
    NaN logits (and only PAD tokens); one so small that logits / temperature overflows float32
    does the same; so does a non-integer or negative length or top_k."""
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ArgumentError(f"length: expected an integer >= 1, found {length!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
        raise ArgumentError(f"top_k: expected an integer >= 0, found {top_k!r}")
    t = float(temperature)
    if not (t == 0 or MIN_TEMPERATURE <= t <= MAX_TEMPERATURE):
        raise ArgumentError(
            f"temperature: expected 0 (greedy) or a number in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}], "
            f"found {temperature!r}"
        )


def left_pad(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad int sequences with PAD_ID: (int32[B, S], mask bool[B, S]) with S the longest."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), PAD_ID, np.int32)
    mask = np.zeros((len(seqs), width), bool)
    for row, s in enumerate(seqs):
        if len(s):
            ids[row, width - len(s) :] = s
            mask[row, width - len(s) :] = True
    return ids, mask


def generate_batch(
    model,
    params,
    vocab,
    seed_texts: list[str],
    length: int,
    *,
    temperature: float = 0.0,
    top_k: int = 0,
    rng_seed: int = 0,
) -> list[str]:
    """`length` characters after each of `seed_texts`, all generated in parallel in one call."""
    if not seed_texts or any(len(t) == 0 for t in seed_texts):
        raise ArgumentError("seed_texts: expected one or more non-empty strings")
    ids, mask = left_pad([vocab.encode(t) for t in seed_texts])
    tokens = make_sampler(model, length, temperature, top_k)(params, ids, mask, jax.random.key(rng_seed))
    return [vocab.decode(row) for row in np.asarray(tokens)]


def generate_text(
    model, params, vocab, seed_text: str, length: int, *, temperature: float = 0.0, top_k: int = 0, rng_seed: int = 0
) -> str:
    """`length` characters sampled after `seed_text` (the seed itself is not repeated)."""
    return generate_batch(
        model, params, vocab, [seed_text], length, temperature=temperature, top_k=top_k, rng_seed=rng_seed
    )[0]
