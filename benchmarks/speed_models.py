"""Train-step builders for the speed benchmark: the same model in every implementation.

Every builder returns a `Step`: `run()` does one full training step (forward, backward and an
Adam update, the result waited for) and `compile()` the one-time work before the first step.
Model: inputs -> one LSTM layer -> Dense -> softmax cross-entropy at every step. Token
configs embed their inputs (vocab 30, embedding 32); feature configs feed float inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lstm_jax import LSTM


@dataclass(frozen=True)
class Config:
    name: str
    hidden: int
    steps: int  # T
    batch: int  # B
    vocab: int = 30  # token configs: vocabulary; also the number of output classes
    embed: int = 32
    features: int = 0  # > 0: float inputs of this width instead of tokens

    @property
    def input_width(self) -> int:
        return self.features or self.embed

    @property
    def classes(self) -> int:
        return self.features or self.vocab

    def train_flops(self) -> float:
        """Matmul FLOPs of one train step: forward (2 per multiply-add) x 3 for forward + backward."""
        h = self.hidden
        per_token = self.input_width * 4 * h + h * 4 * h + h * self.classes
        return 3 * 2 * per_token * self.steps * self.batch

    def describe(self) -> str:
        inputs = f"input {self.features}" if self.features else f"vocab {self.vocab}, embedding {self.embed}"
        return f"({self.name}) {inputs}, hidden {self.hidden}, T={self.steps}, B={self.batch}"


CONFIGS = {
    "a": Config("a", hidden=256, steps=50, batch=64),
    "b": Config("b", hidden=320, steps=1000, batch=32, features=123),
    "c": Config("c", hidden=512, steps=25, batch=128),
}


@dataclass
class Step:
    run: Callable[[], object]
    compile: Callable[[], float]  # seconds spent tracing + compiling (or loading from the cache)


def data(cfg: Config, seed: int = 0):
    """(inputs, targets): tokens int32[B, T] or features float32[B, T, F]; targets int32[B, T]."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, cfg.classes, (cfg.batch, cfg.steps)).astype(np.int32)
    if cfg.features:
        return rng.standard_normal((cfg.batch, cfg.steps, cfg.features)).astype(np.float32), targets
    return rng.integers(0, cfg.vocab, (cfg.batch, cfg.steps)).astype(np.int32), targets


class SeqModel(nn.Module):
    """[embedding ->] recurrent layer -> Dense, for any Flax recurrent layer `make_rnn()`."""

    cfg: Config
    make_rnn: Callable[[], nn.Module]

    @nn.compact
    def __call__(self, inputs):
        x = inputs if self.cfg.features else nn.Embed(self.cfg.vocab, self.cfg.embed)(inputs)
        out = self.make_rnn()(x)
        out = out[0] if isinstance(out, tuple) else out
        return nn.Dense(self.cfg.classes)(out)


def jax_step(cfg: Config, make_rnn, *, donate: bool = True, steps_per_call: int = 1) -> Step:
    """A jitted Adam train step of SeqModel(make_rnn). With steps_per_call > 1, one call runs
    that many steps in a `lax.scan` (the whole-epoch-in-one-jit layout); `run` times one step."""
    model = SeqModel(cfg, make_rnn)
    inputs, targets = (jnp.asarray(a) for a in data(cfg))
    params = model.init(jax.random.key(0), inputs)["params"]
    tx = optax.adam(1e-3)

    def one(carry, batch):
        p, o = carry
        x, y = batch

        def loss(p):
            logits = model.apply({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        value, grads = jax.value_and_grad(loss)(p)
        updates, o = tx.update(grads, o, p)
        return (optax.apply_updates(p, updates), o), value

    if steps_per_call == 1:

        def train(p, o, x, y):
            return one((p, o), (x, y))
    else:

        def train(p, o, x, y):
            xs = jnp.broadcast_to(x, (steps_per_call,) + x.shape)
            ys = jnp.broadcast_to(y, (steps_per_call,) + y.shape)
            return jax.lax.scan(one, (p, o), (xs, ys))

    jitted = jax.jit(train, donate_argnums=(0, 1) if donate else ())
    state = {"p": params, "o": tx.init(params)}

    def compile_() -> float:
        t0 = time.perf_counter()
        state["exe"] = jitted.lower(state["p"], state["o"], inputs, targets).compile()
        return time.perf_counter() - t0

    def run():
        (state["p"], state["o"]), loss = state["exe"](state["p"], state["o"], inputs, targets)
        return jax.block_until_ready(loss)

    return Step(run, compile_)


def lstm_jax_rnn(cfg: Config, **kwargs):
    return lambda: LSTM(hidden_size=cfg.hidden, **kwargs)


def flax_rnn(cfg: Config):
    return lambda: nn.RNN(nn.OptimizedLSTMCell(cfg.hidden))


def jax_cudnn_rnn(cfg: Config):
    """jax.experimental.rnn (cuDNN on GPU) as a Flax layer."""
    from jax.experimental import rnn

    class CudnnLSTM(nn.Module):
        @nn.compact
        def __call__(self, x):
            batch, _, width = x.shape
            size = rnn.get_num_params_in_lstm(width, cfg.hidden, 1, False)
            weights = self.param("weights", nn.initializers.uniform(1.0 / np.sqrt(cfg.hidden)), (size,))
            zeros = jnp.zeros((1, batch, cfg.hidden), x.dtype)
            lengths = jnp.full((batch,), x.shape[1], jnp.int32)
            out, _, _ = rnn.lstm(x, zeros, zeros, weights, lengths, width, cfg.hidden, 1, 0.0, False)
            return out

    return CudnnLSTM


def torch_step(cfg: Config, device: str = "cpu") -> Step:
    """torch.nn.LSTM with the same model, loss and Adam."""
    import torch

    torch.manual_seed(0)
    inputs, targets = data(cfg)
    x = torch.from_numpy(inputs).to(device)
    y = torch.from_numpy(targets).long().to(device)
    layers = [] if cfg.features else [torch.nn.Embedding(cfg.vocab, cfg.embed)]
    embed = torch.nn.Sequential(*layers).to(device)
    lstm = torch.nn.LSTM(cfg.input_width, cfg.hidden, batch_first=True).to(device)
    head = torch.nn.Linear(cfg.hidden, cfg.classes).to(device)
    params = [*embed.parameters(), *lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, 1e-3)

    def run():
        opt.zero_grad(set_to_none=True)
        out, _ = lstm(embed(x))
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, cfg.classes), y.reshape(-1))
        loss.backward()
        opt.step()
        if device != "cpu":
            torch.cuda.synchronize()
        return loss

    return Step(run, lambda: 0.0)


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
