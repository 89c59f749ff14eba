"""Training: the optax optimizer, `train_step`, a whole epoch as one compiled scan, and `fit`.

The train step takes its batch as an argument and holds no device logic, so data-parallel
training can wrap it with shardings rather than rewrite it. Functions take plain arguments
(numbers, arrays, an optax transformation), never a params file.
"""

from __future__ import annotations

import logging
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from lstm_jax.errors import ArgumentError, CheckpointError, TrainingDiverged
from lstm_jax.evaluation import Evaluator, split_window
from lstm_jax.lstm import reset_state
from lstm_jax.metrics import MetricSums, token_sums, with_bits
from lstm_jax.timing import Timed

log = logging.getLogger(__name__)

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
    """Fresh parameters for any model of `lstm_jax.models` (shaped by its `example_input()`)."""
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


class FitResult(NamedTuple):
    """What `fit` returns: the trained `TrainState`, one dict per epoch (epoch, train_ and
    heldout_ loss, bpc, perplexity, accuracy), the `Timed` programs by name, and the epoch with
    the lowest held-out loss (`best_epoch`, 1-based) with its parameters (`best_params`, None
    unless `fit` was asked to keep them)."""

    state: TrainState
    history: list[dict]
    timers: dict[str, Timed]
    best_epoch: int = 0
    best_params: dict | None = None


class TrainResult(NamedTuple):
    """What `train_model` returns: `FitResult`'s fields, plus `final` (exact train_/heldout_ loss,
    bpc, perplexity and accuracy of the returned parameters) and the `Evaluator` that computed
    it. `best_epoch` is the epoch of lowest held-out loss; with `keep_best` the state's params
    are that epoch's (its optimizer state and step stay the last epoch's)."""

    state: TrainState
    history: list[dict]
    final: dict[str, float]
    evaluator: Evaluator
    timers: dict[str, Timed]
    best_epoch: int = 0


def _progress_bar(total: int, initial: int, desc: str):
    """A tqdm bar on an interactive stderr; None without a terminal or without tqdm installed
    (the library does not depend on it)."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc=desc, unit="step")


def fit(
    state: TrainState,
    train: np.ndarray,
    heldout: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    evaluator: Evaluator,
    key: jax.Array,
    desc: str = "train",
    checkpointer=None,
    max_loss: float = np.inf,
    on_epoch=None,
    patience: int | None = None,
    keep_best: bool = False,
) -> FitResult:
    """Train for `epochs` shuffled epochs on windows int32[N, T+1]; evaluate the held-out
    windows int32[M, T+1] after each.

    With a `checkpoint.TrainCheckpointer`, training saves every `checkpointer.every` steps
    (params, optimizer state, step, key, position in the data, metrics so far) and first
    resumes from the latest complete checkpoint of the same run, giving results bitwise equal to
    an uninterrupted run. Raises `TrainingDiverged` at the first step whose loss, gradient or
    parameters are not finite or whose loss exceeds `max_loss`; that state is never saved.
    History rows hold running means of the epoch's steps (train_) and held-out metrics.
    `on_epoch(row)` is called with every history row in order, rows restored from a checkpoint
    first, so a logger that starts afresh at each call of `fit` sees the whole run.

    Early stopping: with `patience`, training stops after `patience` epochs in a row without a
    lower held-out loss than the best so far. With `keep_best` (implied by `patience`), the
    best epoch's parameters are kept (in the checkpoints too, so a resumed run keeps the same
    ones) and returned as `best_params`; `state` is always the last epoch's.
    """
    if patience is not None and patience < 1:
        raise ArgumentError(f"patience: expected an integer >= 1 or None, found {patience}")
    keep_best = keep_best or patience is not None
    n_windows = train.shape[0]
    n_batches = n_windows // batch_size
    if n_batches < 1:
        raise ArgumentError(f"batch_size: expected at most the {n_windows} training windows, found {batch_size}")
    run_chunk = Timed(make_train_chunk(batch_size))
    permute = jax.jit(lambda k: jax.random.permutation(k, n_windows))
    train_dev = jnp.asarray(train)
    zero = MetricSums.zeros().to_numpy()
    progress = {"epoch": 0, "batch": 0, "sums": zero, "history": [], "best": {"epoch": 0, "heldout_loss": None}}
    best_params = None
    if checkpointer is not None:
        restored = checkpointer.restore(state)
        if restored is not None:
            state, progress = restored
            best_params = progress.pop("best_params", None)
            if progress["key"] != np.asarray(jax.random.key_data(key)).tolist():
                raise CheckpointError(f"{checkpointer.folder}: the checkpoint's PRNG key differs from this run's")
            log.info("%s: resumed from %s at step %d", desc, checkpointer.folder, int(state.step))
    every = checkpointer.every if checkpointer is not None else n_batches
    history = list(progress["history"])
    best = dict(progress.get("best") or {"epoch": 0, "heldout_loss": None})
    if keep_best and best["epoch"] > 0 and best_params is None:
        raise CheckpointError(f"{checkpointer.folder}: the checkpoint records a best epoch but not its parameters")
    if on_epoch is not None:
        for row in history:
            on_epoch(row)
    bar = _progress_bar(epochs * n_batches, int(state.step), desc)
    stopped = patience is not None and best["epoch"] > 0 and len(history) - best["epoch"] >= patience
    for epoch in range(progress["epoch"], 0 if stopped else epochs):
        order_key, dropout_key = jax.random.split(jax.random.fold_in(key, epoch))
        order = permute(order_key)
        resuming = epoch == progress["epoch"]
        batch, sums = (progress["batch"], progress["sums"]) if resuming else (0, zero)
        while batch < n_batches:
            # Chunks end on multiples of `every` global steps, so a resumed run cuts the same way.
            n = min(every - int(state.step) % every, n_batches - batch)
            state, chunk_sums, bad = run_chunk(
                state, train_dev, order, np.int32(batch), np.int32(n), dropout_key, np.float32(max_loss)
            )
            if int(bad["step"]) >= 0:
                raise TrainingDiverged(
                    f"{desc}: step {int(bad['step'])} (epoch {epoch + 1}): {GUARDS[int(bad['guard'])]} "
                    f"(loss {float(bad['loss']):.4g}, limit {max_loss:.4g}); lower the learning rate or check the "
                    "data. Training stopped before this step; no checkpoint holds its state"
                )
            sums = jax.tree.map(lambda a, b: np.float32(a + b), sums, chunk_sums)
            batch += n
            if bar is not None:
                bar.update(n)
            if checkpointer is not None and int(state.step) % every == 0:
                checkpointer.save(
                    state,
                    {
                        "epoch": epoch,
                        "batch": batch,
                        "sums": sums,
                        "history": history,
                        "best": best,
                        "key": np.asarray(jax.random.key_data(key)).tolist(),
                    },
                    **({"best_params": best_params if best["epoch"] > 0 else None} if keep_best else {}),
                )
        row = with_bits(
            {"epoch": epoch + 1, **sums.summary("train_"), **evaluator.metrics(state.params, heldout, "heldout_")}
        )
        log.info(
            "%s: epoch %d/%d: train loss %.4f, held-out loss %.4f, held-out accuracy %.4f",
            desc,
            epoch + 1,
            epochs,
            row["train_loss"],
            row["heldout_loss"],
            row["heldout_accuracy"],
        )
        if bar is not None:
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", heldout_acc=f"{row['heldout_accuracy']:.3f}")
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if best["heldout_loss"] is None or row["heldout_loss"] < best["heldout_loss"]:
            best = {"epoch": epoch + 1, "heldout_loss": row["heldout_loss"]}
            best_params = state.params if keep_best else None
        if patience is not None and epoch + 1 - best["epoch"] >= patience:
            log.info(
                "%s: early stop after epoch %d: no better held-out loss since epoch %d", desc, epoch + 1, best["epoch"]
            )
            break
    if bar is not None:
        bar.close()
    if checkpointer is not None:
        checkpointer.finish()
    return FitResult(state, history, {f"{desc}_steps": run_chunk}, best["epoch"], best_params)


def train_model(
    model,
    params,
    train: np.ndarray,
    heldout: np.ndarray,
    *,
    tx: optax.GradientTransformation,
    epochs: int,
    batch_size: int,
    eval_batch_size: int,
    key: jax.Array,
    desc: str = "train",
    checkpointer=None,
    on_epoch=None,
    patience: int | None = None,
    keep_best: bool = False,
) -> TrainResult:
    """Train a token model (e.g. `CharLM`) from `params` with optimizer `tx` by `fit`, then
    evaluate the trained parameters exactly on both splits.

    Build `tx` for `count_steps(len(train), batch_size, epochs)` steps when its schedule needs
    the length. Training stops with `TrainingDiverged` if a batch's loss exceeds
    EXPLODED_FACTOR * ln(V). `on_epoch`, `patience` (early stopping) and `keep_best` (return
    the best epoch's parameters) as in `fit`.
    """
    state = create_train_state(model, params, tx)
    evaluator = Evaluator(model.apply, eval_batch_size)
    max_loss = EXPLODED_FACTOR * float(np.log(model.vocab_size))
    fitted = fit(
        state,
        train,
        heldout,
        epochs=epochs,
        batch_size=batch_size,
        evaluator=evaluator,
        key=key,
        desc=desc,
        checkpointer=checkpointer,
        max_loss=max_loss,
        on_epoch=on_epoch,
        patience=patience,
        keep_best=keep_best,
    )
    state = fitted.state if fitted.best_params is None else fitted.state.replace(params=fitted.best_params)
    final = with_bits(
        {**evaluator.metrics(state.params, train, "train_"), **evaluator.metrics(state.params, heldout, "heldout_")}
    )
    timers = {**fitted.timers, f"{desc}_evaluate": evaluator.evaluate}
    return TrainResult(state, fitted.history, final, evaluator, timers, fitted.best_epoch)
