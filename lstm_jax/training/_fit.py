"""The training loop around `lstm_jax.training`'s compiled chunks: `fit` (epochs, held-out
evaluation, resumable checkpoints, early stopping, the best epoch's weights) and `train_model`
(fit, then an exact evaluation of the returned parameters on both splits).
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
from lstm_jax.training._evaluation import Evaluator
from lstm_jax.training._metrics import MetricSums, with_bits
from lstm_jax.training._timing import Timed
from lstm_jax.training._step import EXPLODED_FACTOR, GUARDS, create_train_state, make_train_chunk

log = logging.getLogger(__name__)


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
    heldout_context: int = 0,
) -> FitResult:
    """Train for `epochs` shuffled epochs on windows int32[N, T+1]; evaluate the held-out
    windows int32[M, T+1] after each.

    With a `resume.TrainCheckpointer`, training saves every `checkpointer.every` steps
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

    `heldout_context`: 0 scores every held-out window from a zero state; k > 0 scores each
    after the k windows before it (consecutive windows, stride T; `evaluation.with_context`).
    """
    check_heldout_context(heldout_context)
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
            {
                "epoch": epoch + 1,
                **sums.summary("train_"),
                **evaluator.metrics(state.params, heldout, "heldout_", heldout_context),
            }
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


def check_heldout_context(heldout_context) -> None:
    if isinstance(heldout_context, bool) or not isinstance(heldout_context, int) or heldout_context < 0:
        raise ArgumentError(f"heldout_context: expected an integer >= 0 (windows), found {heldout_context!r}")


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
    heldout_context: int = 0,
) -> TrainResult:
    """Train a token model (e.g. `CharLM`) from `params` with optimizer `tx` by `fit`, then
    evaluate the trained parameters exactly on both splits.

    Build `tx` for `count_steps(len(train), batch_size, epochs)` steps when its schedule needs
    the length. Training stops with `TrainingDiverged` if a batch's loss exceeds
    EXPLODED_FACTOR * ln(V). `on_epoch`, `patience` (early stopping) and `keep_best` (return
    the best epoch's parameters) and `heldout_context` (held-out windows scored from a zero state,
    or after the windows before them) as in `fit`.
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
        heldout_context=heldout_context,
    )
    state = fitted.state if fitted.best_params is None else fitted.state.replace(params=fitted.best_params)
    final = with_bits(
        {
            **evaluator.metrics(state.params, train, "train_"),
            **evaluator.metrics(state.params, heldout, "heldout_", heldout_context),
        }
    )
    timers = {**fitted.timers, f"{desc}_evaluate": evaluator.evaluate}
    timers.update({f"{desc}_evaluate_context": timed for timed in evaluator.context_evaluate.values()})
    return TrainResult(state, fitted.history, final, evaluator, timers, fitted.best_epoch)
