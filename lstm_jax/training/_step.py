"""Training steps: the optax optimizer, `train_step`, chunks of an epoch as one compiled loop,
and a stateful epoch over a stream (`fit` and `train_model`, the loops around them, are in
`lstm_jax.training`).

The train step takes its batch as an argument and holds no device logic, so data-parallel
training can wrap it with shardings rather than rewrite it. Functions take plain arguments
(numbers, arrays, an optax transformation), never a params file.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from lstm_jax.errors import ArgumentError
from lstm_jax.training._evaluation import split_window
from lstm_jax.recurrence._scan import reset_state
from lstm_jax.training._metrics import MetricSums, token_sums

SCHEDULES = ("constant", "cosine", "exponential")


def make_schedule(
    learning_rate: float,
    total_steps: int,
    *,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    final_lr_factor: float = 1.0,
) -> optax.Schedule:
    """Linear warm-up over `warmup_steps`, then constant, cosine or exponential decay to
    `learning_rate * final_lr_factor` at `total_steps` (cosine: Loshchilov & Hutter 2017)."""
    if schedule not in SCHEDULES:
        raise ArgumentError(f"schedule: expected one of {list(SCHEDULES)}, found {schedule!r}")
    decay_steps = max(total_steps - warmup_steps, 1)
    if schedule == "constant":
        main = optax.constant_schedule(learning_rate)
    elif schedule == "cosine":
        main = optax.cosine_decay_schedule(learning_rate, decay_steps, alpha=final_lr_factor)
    else:
        main = optax.exponential_decay(learning_rate, decay_steps, decay_rate=final_lr_factor)
    if warmup_steps == 0:
        return main
    warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
    return optax.join_schedules([warmup, main], [warmup_steps])


def make_optimizer(
    learning_rate: float,
    total_steps: int,
    *,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    final_lr_factor: float = 1.0,
    clip_norm: float | None = None,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """Adam (Kingma & Ba 2015) on the schedule of `make_schedule`, after clipping the global
    gradient norm to `clip_norm` (Pascanu et al. 2013) when it is given; with `weight_decay`
    > 0, AdamW's decoupled weight decay (Loshchilov & Hutter 2019), scaled by the schedule."""
    lr = make_schedule(
        learning_rate, total_steps, schedule=schedule, warmup_steps=warmup_steps, final_lr_factor=final_lr_factor
    )
    adam = optax.adamw(lr, weight_decay=weight_decay) if weight_decay > 0 else optax.adam(lr)
    return adam if clip_norm is None else optax.chain(optax.clip_by_global_norm(clip_norm), adam)


def create_train_state(model, params, tx) -> TrainState:
    # An int32 step (not a Python int) keeps one compiled signature before and after a resume.
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx).replace(step=jnp.int32(0))


def init_params(model, key: jax.Array):
    """Fresh parameters for any model of `lstm_jax.nn` (shaped by its `example_input()`)."""
    return model.init(key, model.example_input())["params"]


def _apply(state: TrainState, params, inputs, carry, rng):
    """Model call for training: dropout is on exactly when a PRNG key is given."""
    rngs = None if rng is None else {"dropout": rng}
    return state.apply_fn({"params": params}, inputs, carry, deterministic=rng is None, rngs=rngs)


class StepMetrics(NamedTuple):
    """What one train step measured: the batch's `MetricSums` and the gradient's global norm
    (before clipping), float32[]."""

    sums: MetricSums
    grad_norm: jax.Array


def train_step(state: TrainState, batch: dict, rng: jax.Array | None = None) -> tuple[TrainState, StepMetrics]:
    """One optimizer step on batch {"inputs", "targets": int32[B, T], "weights": float32[B, T]}.

    Every row starts from a zero state. `rng` drives dropout (none when None).
    Returns the new state and the step's `StepMetrics`.
    """
    state, _, sums = stateful_train_step(state, batch, None, rng)
    return state, sums


def stateful_train_step(state: TrainState, batch: dict, carry, rng: jax.Array | None = None):
    """A train step that starts from LSTM state `carry` and returns the state it ends in.

    `batch` may hold "reset": bool[B], rows whose state is zeroed first (stream or document
    boundaries). The returned state carries the value on but not the gradient: backprop is
    truncated at the batch boundary, so memory does not grow with the stream's length.
    Returns (train_state, carry, StepMetrics); with carry None every row starts from zeros.
    """
    if carry is not None and "reset" in batch:
        carry = reset_state(carry, batch["reset"])

    def loss_fn(params):
        logits, new_carry = _apply(state, params, batch["inputs"], carry, rng)
        sums = token_sums(logits, batch["targets"], batch["weights"])
        return sums.mean_loss(), (sums, new_carry)

    grads, (sums, new_carry) = jax.grad(loss_fn, has_aux=True)(state.params)
    metrics = StepMetrics(sums, optax.tree.norm(grads))
    return state.apply_gradients(grads=grads), jax.lax.stop_gradient(new_carry), metrics


GUARDS = (
    "loss is NaN or infinite",
    "gradient norm is NaN or infinite",
    "parameters are NaN or infinite",
    "loss exploded",
)
EXPLODED_FACTOR = 100.0  # a loss above this many times ln(V), a uniform guess's loss, has diverged


def make_train_chunk(batch_size: int):
    """A jitted `(state, windows int32[N, T+1], order int32[N], start, n_steps, key, max_loss) ->
    (state, sums, bad)` running batches start .. start+n_steps-1 of one epoch.

    Batch b holds windows order[b*B : (b+1)*B]; dropout keys are `key` folded with the global
    step. The loop stops at the first step whose loss, gradient norm or updated parameters are
    not finite, or whose loss exceeds `max_loss`, keeping the state from before that step; then
    bad = {"step": that step, "guard": index into GUARDS, "loss": its loss}, else step = -1.
    `n_steps` is a traced value, so one compiled program serves chunks of any length and an
    epoch can be cut anywhere (checkpoints) with the same per-step results.
    """

    def chunk(state, windows, order, start, n_steps, key, max_loss):
        no_bad = {"step": jnp.int32(-1), "guard": jnp.int32(-1), "loss": jnp.float32(0)}

        def cond(carry):
            i, _, _, bad = carry
            return (i < n_steps) & (bad["step"] < 0)

        def body(carry):
            i, state, sums, bad = carry
            idx = jax.lax.dynamic_slice_in_dim(order, (start + i) * batch_size, batch_size)
            new, metrics = train_step(state, split_window(windows[idx]), jax.random.fold_in(key, state.step))
            loss = metrics.sums.mean_loss()
            passed = jnp.stack(
                [
                    jnp.isfinite(loss),
                    jnp.isfinite(metrics.grad_norm),
                    jnp.isfinite(optax.tree.norm(new.params)),
                    loss <= max_loss,
                ]
            )
            ok = jnp.all(passed)
            state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
            sums = MetricSums(*(v + jnp.where(ok, m, 0.0) for v, m in zip(sums, metrics.sums)))
            failed = {"step": state.step + 1, "guard": jnp.argmin(passed).astype(jnp.int32), "loss": loss}
            bad = jax.tree.map(lambda b, f: jnp.where(ok, b, f), bad, failed)
            return i + 1, state, sums, bad

        _, state, sums, bad = jax.lax.while_loop(cond, body, (jnp.int32(0), state, MetricSums.zeros(), no_bad))
        return state, sums, bad

    return jax.jit(chunk)


def make_stateful_train_epoch(model):
    """A jitted `(state, batches int32[K, B, T+1], resets bool[K, B], key) -> (state, MetricSums, carry)`.

    Stateful training over a stream laid out by `data.stream_batches`: batches run in order,
    row i of batch k+1 continuing row i of batch k, so the LSTM state is carried from batch to
    batch. It starts from zeros (reset at every epoch), rows flagged in `resets[k]` are zeroed
    before batch k, and gradients are truncated at batch boundaries. Returns the final carry too.
    """

    def epoch(state, batches, resets, key):
        def body(inputs_carry, inputs):
            state, carry = inputs_carry
            w, reset, step = inputs
            batch = {**split_window(w), "reset": reset}
            state, carry, metrics = stateful_train_step(state, batch, carry, jax.random.fold_in(key, step))
            return (state, carry), metrics.sums

        carry = model.initial_state(batches.shape[1])
        steps = jnp.arange(batches.shape[0])
        (state, carry), sums = jax.lax.scan(body, (state, carry), (batches, resets, steps))
        return state, jax.tree.map(jnp.sum, sums), carry

    return jax.jit(epoch)
