"""Many small models trained at once, each keeping its best epoch: one compiled program,
`vmap`ped over runs (seeds, or candidates of equal shape), the data shared by all runs.

The classifiers' and forecasters' trainers (`make_best_epoch_trainer`, `make_forecast_trainer`)
are this loop with their own loss; a new task needs only its `init`, `loss` and `validate`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from lstm_jax.errors import ArgumentError


def make_many_runs_trainer(
    init: Callable,
    loss: Callable,
    validate: Callable,
    tx: optax.GradientTransformation,
    *,
    epochs: int,
    batch_size: int,
):
    """A jitted `(keys key[R], train, val) -> dict` that trains one run per key.

    Args:
      init: `init(key, train) -> params`, a run's initial parameters.
      loss: `loss(params, batch, rng) -> float32[]`, the training objective on `batch` (the
        tuple `train` with each array indexed by the mini-batch's rows); `rng` is the step's
        dropout key.
      validate: `validate(params, val) -> (val_loss float32[], extras dict of float32[])`.
      tx: the optax transformation (e.g. `make_optimizer`'s: schedule, clipping, weight decay);
        its schedule counts optimizer steps, `epochs * (N // batch_size)` in all.
      epochs, batch_size: each epoch takes N // batch_size shuffled mini-batches of the N
        training rows (batch_size capped at N), in an order drawn from (key, epoch) alone, so
        a shorter run retraces the first epochs of a longer one bit for bit.

    Returns:
      The trainer. Its result: {"params": the parameters of each run's epoch with the lowest
      validation loss (the earlier on ties and NaN), leading axis R; "best_epoch": int32[R],
      1-based; "train_loss": float32[R, epochs], the mean over each epoch's steps;
      "val_loss": float32[R, epochs]; and each of `validate`'s extras as float32[R, epochs]}.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> x = jnp.arange(8.0)[:, None]
      >>> trainer = make_many_runs_trainer(
      ...     init=lambda key, train: {"w": jax.random.normal(key, ())},
      ...     loss=lambda p, batch, rng: jnp.mean((p["w"] * batch[0] - 2 * batch[0]) ** 2),
      ...     validate=lambda p, val: (jnp.mean((p["w"] * val[0] - 2 * val[0]) ** 2), {}),
      ...     tx=optax.adam(0.1), epochs=30, batch_size=4)
      >>> out = trainer(jax.random.split(jax.random.key(0), 3), (x,), (x,))
      >>> out["train_loss"].shape, bool(jnp.all(jnp.abs(out["params"]["w"] - 2) < 0.1))
      ((3, 30), True)
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if int(value) != value or value < 1:
            raise ArgumentError(f"{name}: expected an integer >= 1, found {value!r}")

    def run(key, train, val):
        n = train[0].shape[0]
        size = min(batch_size, n)
        n_batches = n // size
        init_key, order_key, dropout_key = jax.random.split(key, 3)
        params = init(init_key, train)

        def step(inner, batch):
            params, opt_state = inner
            rows, rng = batch
            value, grads = jax.value_and_grad(loss)(params, tuple(a[rows] for a in train), rng)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        def epoch(outer, e):
            params, opt_state, best, best_loss, best_epoch = outer
            order = jax.random.permutation(jax.random.fold_in(order_key, e), n)
            batches = order[: n_batches * size].reshape(n_batches, size)
            rngs = jax.random.split(jax.random.fold_in(dropout_key, e), n_batches)
            (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (batches, rngs))
            val_loss, extras = validate(params, val)
            better = val_loss < best_loss  # strict: ties (and NaN) keep the earlier epoch
            best = jax.tree.map(lambda new, old: jnp.where(better, new, old), params, best)
            best_loss = jnp.where(better, val_loss, best_loss)
            best_epoch = jnp.where(better, e + 1, best_epoch)
            curves = {"train_loss": losses.mean(), "val_loss": val_loss, **extras}
            return (params, opt_state, best, best_loss, best_epoch), curves

        start = (params, tx.init(params), params, jnp.float32(jnp.inf), jnp.int32(0))
        (_, _, best, _, best_epoch), curves = jax.lax.scan(epoch, start, jnp.arange(epochs, dtype=jnp.int32))
        return {"params": best, "best_epoch": best_epoch, **curves}

    return jax.jit(jax.vmap(run, in_axes=(0, None, None)))


def optimizer_or_adam(tx: optax.GradientTransformation | None, learning_rate: float | None):
    """`tx`, or Adam at a constant `learning_rate` (exactly one of the two)."""
    if (tx is None) == (learning_rate is None):
        raise ArgumentError("tx, learning_rate: expected exactly one (an optax transformation or a rate)")
    return tx if tx is not None else optax.adam(learning_rate)
