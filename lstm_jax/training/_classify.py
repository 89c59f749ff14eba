"""Many small sequence classifiers trained at once: one compiled program, `vmap`ped over runs
(seeds x datasets of equal shape). Stateless runs train on shuffled mini-batches from a zero
state; stateful runs go through the patterns in order, carrying the LSTM state from batch to
batch and resetting it at every epoch (the Keras `stateful=True` + `reset_states()` recipe).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from lstm_jax.training._many_runs import make_many_runs_trainer, optimizer_or_adam


def _epoch_fn(model, tx, key, x, y, mask, *, batch_size: int, shuffle: bool, stateful: bool):
    """`epoch((params, opt_state), e) -> ((params, opt_state), mean loss)`: one epoch of
    N // batch_size steps, in an order drawn from (key, e) alone (so a shorter run retraces
    the first epochs of a longer one bit for bit)."""
    n = x.shape[0]
    n_batches = n // batch_size

    def loss_fn(params, idx, carry):
        logits, carry = model.apply({"params": params}, x[idx], carry, mask=mask[idx])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y[idx]).mean(), carry

    def step(inner, idx):
        params, opt_state, carry = inner
        (loss, new_carry), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, idx, carry)
        updates, opt_state = tx.update(grads, opt_state, params)
        carry = jax.lax.stop_gradient(new_carry) if stateful else carry
        return (optax.apply_updates(params, updates), opt_state, carry), loss

    def epoch(outer, e):
        params, opt_state = outer
        order = jax.random.permutation(jax.random.fold_in(key, e), n) if shuffle else jnp.arange(n)
        batches = order[: n_batches * batch_size].reshape(n_batches, batch_size)
        carry = model.initial_state(batch_size) if stateful else None  # reset every epoch
        (params, opt_state, _), losses = jax.lax.scan(step, (params, opt_state, carry), batches)
        return (params, opt_state), losses.mean()

    return epoch


def fit_epochs(model, tx, params, key, x, y, mask, *, epochs: int, batch_size: int, shuffle: bool, stateful: bool):
    """Train `params` with optimizer `tx` for `epochs` epochs on x float32[N, T, F], y int32[N],
    mask bool[N, T]; traceable (call it inside jit/vmap). Returns (params, epoch_loss float32[epochs]),
    the mean training cross-entropy over each epoch's N // batch_size steps."""
    epoch = _epoch_fn(model, tx, key, x, y, mask, batch_size=batch_size, shuffle=shuffle, stateful=stateful)
    (params, _), epoch_loss = jax.lax.scan(epoch, (params, tx.init(params)), jnp.arange(epochs))
    return params, epoch_loss


def _loss_and_accuracy(model, params, x, y, mask):
    logits, _ = model.apply({"params": params}, x, mask=mask)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, jnp.mean(jnp.argmax(logits, -1) == y)


def make_best_epoch_trainer(
    model,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float | None = None,
    tx: optax.GradientTransformation | None = None,
):
    """A `(keys key[R], x float32[N, T, F], y int32[N], mask bool[N, T], x_val, y_val,
    mask_val) -> dict` trainer of R seeds at once (`make_many_runs_trainer`; the data are
    shared) on shuffled mini-batches from a zero state. The optimizer is `tx` (e.g.
    `make_optimizer`'s; its schedule counts `epochs * (N // batch_size)` steps) or Adam at a
    constant `learning_rate`. After every epoch each seed is scored on the validation part;
    the parameters of its epoch with the lowest validation loss are kept (the earlier epoch on
    ties), as the char model keeps its best epoch.

    Returns {"params": best parameters [R, ...], "best_epoch": int32[R] (1-based),
    "train_loss", "val_loss", "val_accuracy": float32[R, epochs]}.
    """

    def objective(params, batch, rng):
        x, y, mask = batch
        logits, _ = model.apply({"params": params}, x, None, mask=mask)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def validate(params, val):
        loss, accuracy = _loss_and_accuracy(model, params, *val)
        return loss, {"val_accuracy": accuracy}

    trainer = make_many_runs_trainer(
        init=lambda key, train: model.init(key, train[0][:1], mask=train[2][:1])["params"],
        loss=objective,
        validate=validate,
        tx=optimizer_or_adam(tx, learning_rate),
        epochs=epochs,
        batch_size=batch_size,
    )
    return lambda keys, x, y, mask, x_val, y_val, mask_val: trainer(keys, (x, y, mask), (x_val, y_val, mask_val))


def make_predict_classes(model):
    """A jitted `(params [R, ...], x float32[N, T, F], mask bool[N, T]) -> int32[R, N]`: each
    seed's predicted class for every sequence."""

    def predict(params, x, mask):
        logits, _ = model.apply({"params": params}, x, mask=mask)
        return jnp.argmax(logits, -1).astype(jnp.int32)

    return jax.jit(jax.vmap(predict, in_axes=(0, None, None)))


def make_trainer(model, *, epochs: int, batch_size: int, shuffle: bool, stateful: bool, learning_rate: float):
    """A jitted `(keys key[R], x float32[R, N, T, F], y int32[R, N], mask bool[R, N, T]) ->
    (params with leading axis R, epoch_loss float32[R, epochs])`.

    Each run initialises its model from its key and trains with Adam (Keras' default in the
    tutorial: lr 1e-3) via `fit_epochs`.
    """
    tx = optax.adam(learning_rate)

    def run(key, x, y, mask):
        init_key, order_key = jax.random.split(key)
        params = model.init(init_key, x[:batch_size], mask=mask[:batch_size])["params"]
        return fit_epochs(
            model,
            tx,
            params,
            order_key,
            x,
            y,
            mask,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=shuffle,
            stateful=stateful,
        )

    return jax.jit(jax.vmap(run))


def make_accuracy(model, *, stateful: bool):
    """A jitted `(params [R], x [R, N, T, F], y [R, N], mask [R, N, T], order int32[N]) ->
    accuracy float32[R]` on the patterns taken in `order`. Stateful models see them one at a
    time from a zero state, carrying the state along, as they were trained; stateless models see
    each pattern alone."""

    def accuracy(params, x, y, mask, order):
        x, y, mask = x[order], y[order], mask[order]
        if not stateful:
            logits, _ = model.apply({"params": params}, x, mask=mask)
            return jnp.mean(jnp.argmax(logits, -1) == y)

        def step(carry, inputs):
            xi, mi = inputs
            logits, carry = model.apply({"params": params}, xi[None], carry, mask=mi[None])
            return carry, jnp.argmax(logits[0])

        _, preds = jax.lax.scan(step, model.initial_state(1), (x, mask))
        return jnp.mean(preds == y)

    return jax.jit(jax.vmap(accuracy, in_axes=(0, 0, 0, 0, None)))
