"""The tutorials' experiments as library calls: the alphabet framings over many seeds, and
one model trained over several datasets in a loop.

Each function takes typed config fields and returns plain dicts and arrays; stage scripts
write them out.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lstm_jax.training import fit_epochs, make_accuracy, make_trainer, Timed, EXPLODED_FACTOR
from lstm_jax.errors import TrainingDiverged
from lstm_jax.nn import SequenceClassifier
from lstm_pipeline.alphabet import LETTERS, build_patterns, letter_order, spell
from lstm_pipeline.sequences import SequenceSet, concat, shifted_datasets, split
from lstm_pipeline.stage import seed_summary

ALPHABETS = ("plain", "scrambled")


def make_recital(model, length: int, encode):
    """A jitted `(params [R], first int32[]) -> int32[R, length]`: from a zero state, feed the
    letter `first`, then each prediction back in, `length` times (`encode` maps letter indices
    to input values float32[..., F])."""

    def recite(params, first):
        def step(inputs, _):
            carry, letter = inputs
            logits, carry = model.apply({"params": params}, encode(letter)[None, None, :], carry)
            nxt = jnp.argmax(logits[0]).astype(jnp.int32)
            return (carry, nxt), nxt

        _, letters = jax.lax.scan(step, (model.initial_state(1), jnp.int32(first)), None, length=length)
        return letters

    return jax.jit(jax.vmap(recite, in_axes=(0, None)))


def check_diverged(epoch_loss, params, classes: int, where: str, runs: list[str], hint: str) -> None:
    """The pipeline's divergence guard for the vmapped trainers (which run every epoch): raise
    TrainingDiverged naming the first run and epoch whose mean loss is NaN, infinite or above
    EXPLODED_FACTOR * ln(classes) (a uniform guess's loss), or a run whose trained parameters
    are not finite. `epoch_loss` is float[R, epochs]; `runs` names the R runs."""
    loss = np.asarray(epoch_loss, np.float64).reshape(len(runs), -1)
    limit = EXPLODED_FACTOR * math.log(classes)
    bad = ~np.isfinite(loss) | (loss > limit)
    if bad.any():
        r, e = np.argwhere(bad)[0]
        value = loss[r, e]
        why = (
            "is NaN or infinite"
            if not np.isfinite(value)
            else f"exceeds {limit:.4g}, {EXPLODED_FACTOR:g} x ln({classes})"
        )
        raise TrainingDiverged(
            f"{where}: {runs[r]}: epoch {e + 1}: loss {value:.4g} {why}; {hint}. Nothing was written"
        )
    for leaf in jax.tree.leaves(params):
        rows = np.asarray(leaf).reshape(len(runs), -1)
        if not np.isfinite(rows).all():
            r = int(np.argmin(np.isfinite(rows).all(axis=1)))
            raise TrainingDiverged(
                f"{where}: {runs[r]}: parameters became NaN or infinite; {hint}. Nothing was written"
            )


def run_alphabet_framing(cfg, framing) -> tuple[dict, list[dict], dict]:
    """Train `framing` (a `params.FramingConfig`) for `cfg.seeds` seeds on the real and the
    scrambled alphabet, all runs in one vmapped program.

    Returns (metrics, loss_rows, timers): metrics per alphabet hold training accuracy and
    accuracy on the same patterns in a random order (mean, std and per seed), plus, for a
    stateful framing, the letters recited from a seed 'A' and the prediction from a cold 'K';
    loss_rows is the mean training loss over seeds per epoch (at most ~100 rows).
    """
    orders = {name: letter_order(name == "scrambled", cfg.scramble_seed) for name in ALPHABETS}
    patterns = {
        name: build_patterns(
            framing.kind, order, window=cfg.window, samples=cfg.samples, max_length=cfg.max_length, seed=cfg.data_seed
        )
        for name, order in orders.items()
    }
    runs = [(name, seed) for name in ALPHABETS for seed in range(cfg.seeds)]
    x = np.stack([patterns[a].x for a, _ in runs])
    y = np.stack([patterns[a].y for a, _ in runs])
    mask = np.stack([patterns[a].mask for a, _ in runs])
    keys = jnp.stack([jax.random.key(seed) for _, seed in runs])  # same init for both alphabets

    model = SequenceClassifier(num_classes=26, hidden_size=framing.hidden_size, features=x.shape[-1])
    train = Timed(
        make_trainer(
            model,
            epochs=framing.epochs,
            batch_size=framing.batch_size,
            shuffle=framing.shuffle,
            stateful=framing.stateful,
            learning_rate=cfg.learning_rate,
        )
    )
    params, epoch_loss = train(keys, x, y, mask)
    name = next((k for k, v in cfg.framings.items() if v is framing), framing.kind)
    check_diverged(
        epoch_loss,
        params,
        26,
        f"alphabet.framings.{name}",
        [f"{a} alphabet, seed {seed}" for a, seed in runs],
        "lower alphabet.learning_rate",
    )
    accuracy = make_accuracy(model, stateful=framing.stateful)
    n = x.shape[1]
    in_order = np.asarray(accuracy(params, x, y, mask, jnp.arange(n)))
    shuffled = np.asarray(accuracy(params, x, y, mask, jax.random.permutation(jax.random.key(cfg.data_seed), n)))

    metrics = {"patterns": int(n), "epochs": framing.epochs}
    for name in ALPHABETS:
        rows = [i for i, (a, _) in enumerate(runs) if a == name]
        metrics[name] = {
            "train_accuracy": seed_summary(in_order[rows]),
            "random_order_accuracy": seed_summary(shuffled[rows]),
            "train_accuracy_per_seed": [float(v) for v in in_order[rows]],
        }
    if framing.stateful:
        metrics["recital"] = _recitals(model, params, runs, orders)

    loss = np.asarray(epoch_loss)
    every = max(1, framing.epochs // 100)
    loss_rows = [
        {
            "epoch": e + 1,
            **{
                f"{name}_loss": float(loss[[i for i, (a, _) in enumerate(runs) if a == name], e].mean())
                for name in ALPHABETS
            },
        }
        for e in range(0, framing.epochs, every)
    ]
    return metrics, loss_rows, {"train": train}


def _recitals(model, params, runs, orders) -> dict:
    """Per alphabet and seed: 25 letters recited from its first letter, and the prediction for
    the letter 11th in its order (K for the real alphabet) from a zero state."""

    def encode(letter):  # as alphabet.value: index / 26, one feature
        return (letter.astype(jnp.float32) / len(LETTERS))[None]

    recite, recite_one = make_recital(model, 25, encode), make_recital(model, 1, encode)
    out = {}
    for name in ALPHABETS:
        rows = np.array([i for i, (a, _) in enumerate(runs) if a == name])
        sub = jax.tree.map(lambda p, rows=rows: p[rows], params)
        order = orders[name]
        from_first = np.asarray(recite(sub, int(order[0])))
        cold = np.asarray(recite_one(sub, int(order[10])))
        out[name] = {
            "seed_letter": spell(order[:1]),
            "recited": [spell(r) for r in from_first],
            "expected": spell(order[1:]),
            "cold_letter": spell(order[10:11]),
            "cold_prediction": [spell(r) for r in cold],
            "cold_expected": spell(order[11:12]),
        }
    return out


def run_sequential(cfg) -> dict:
    """Train one SequenceClassifier on `cfg.datasets` related datasets in turn (a
    `params.SequentialConfig`), then a fresh one jointly on all of them for the same number
    of steps.

    Between datasets the LSTM state is reset (every batch starts from zeros; nothing is
    carried over) and a new Adam with its own decay lr0 * exp(-epoch / epochs) starts; the
    weights carry on: the model is never re-created, since masks make padded datasets of any
    length fit the same model. Returns {"matrix": A[i][j] (accuracy on test set j after
    training on dataset i), "joint": accuracy per test set, "loss_rows": per-epoch losses}.
    """
    sets = shifted_datasets(
        cfg.datasets,
        seed=cfg.seed,
        size=cfg.train_size + cfg.test_size,
        min_length=cfg.min_length,
        max_length=cfg.max_length,
        features=cfg.features,
        shift=cfg.shift,
    )
    train_sets, test_sets = zip(*(split(s, cfg.train_size) for s in sets))
    model = SequenceClassifier(num_classes=2, hidden_size=cfg.hidden_size, features=cfg.features)
    steps_per_epoch = cfg.train_size // cfg.batch_size

    def optimizer(epoch_steps: int):
        decay = lambda step: cfg.learning_rate * jnp.exp(-(step // epoch_steps) / cfg.epochs)  # noqa: E731
        return optax.adam(decay)

    compiled = {}  # one program per epoch length: the sequential datasets share one
    hint = "lower sequential.learning_rate, or sequential.shift if the inputs overflow float32"

    def fit(params, key, data: SequenceSet, epoch_steps: int):
        if epoch_steps not in compiled:
            compiled[epoch_steps] = jax.jit(
                lambda p, k, x, y, m: fit_epochs(
                    model,
                    optimizer(epoch_steps),
                    p,
                    k,
                    x,
                    y,
                    m,
                    epochs=cfg.epochs,
                    batch_size=cfg.batch_size,
                    shuffle=True,
                    stateful=False,
                )
            )
        return compiled[epoch_steps](params, key, data.x, data.y, data.mask)

    accuracy = jax.jit(lambda p, x, y, m: jnp.mean(jnp.argmax(model.apply({"params": p}, x, mask=m)[0], -1) == y))
    key = jax.random.key(cfg.seed)
    first = train_sets[0]
    params = model.init(jax.random.fold_in(key, 0), first.x[:1], mask=first.mask[:1])["params"]
    init = params
    matrix, loss_rows = [], []
    for i, data in enumerate(train_sets):
        params, losses = fit(params, jax.random.fold_in(key, i + 1), data, steps_per_epoch)
        check_diverged(losses, params, 2, "sequential", [f"dataset {i}"], hint)
        matrix.append([float(accuracy(params, t.x, t.y, t.mask)) for t in test_sets])
        loss_rows += [{"epoch": i * cfg.epochs + e + 1, "dataset": i, "loss": float(v)} for e, v in enumerate(losses)]

    joint_data = concat(list(train_sets))  # N x the data for the same epochs = the same number of steps
    joint_params, joint_losses = fit(init, jax.random.fold_in(key, 99), joint_data, steps_per_epoch * cfg.datasets)
    check_diverged(joint_losses, joint_params, 2, "sequential", ["joint training"], hint)
    joint = [float(accuracy(joint_params, t.x, t.y, t.mask)) for t in test_sets]
    return {"matrix": matrix, "joint": joint, "loss_rows": loss_rows, "joint_loss": [float(v) for v in joint_losses]}
