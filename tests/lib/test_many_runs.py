"""The one trainer for many small models (`make_many_runs_trainer`), under the classifiers' and
forecasters' trainers: it takes any optax transformation, and Adam at a constant rate built the
way the pipeline builds every optimizer (`make_optimizer`, schedule "constant") gives the bits of
plain `optax.adam`, so moving the tasks onto it changed no forecast."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lstm_jax import ArgumentError, Forecaster, SequenceClassifier
from lstm_jax.training import make_best_epoch_trainer, make_forecast_trainer, make_optimizer, windows

SERIES = np.sin(np.arange(80, dtype=np.float32) / 4)[:, None]
X, Y = windows(SERIES, 8, 2)
DATA = (X[:-10], Y[:-10], X[-10:], Y[-10:])
KEYS = jax.random.split(jax.random.key(0), 2)
MODEL = Forecaster(features=1, horizon=2, hidden_size=8)


def leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


def test_adam_from_make_optimizer_gives_plain_adams_bits():
    steps = 6 * (len(DATA[0]) // 16)
    plain = make_forecast_trainer(MODEL, epochs=6, batch_size=16, learning_rate=0.01)(KEYS, *DATA)
    built = make_optimizer(0.01, steps, schedule="constant")
    same = make_forecast_trainer(MODEL, epochs=6, batch_size=16, tx=built)(KEYS, *DATA)
    for a, b in zip(leaves(plain), leaves(same), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_transformation_given_is_the_one_used():
    """A transformation that never moves the weights: every epoch has the same training loss,
    and a clipped, decaying one trains differently from plain Adam."""
    frozen = make_forecast_trainer(MODEL, epochs=3, batch_size=16, tx=optax.set_to_zero())(KEYS, *DATA)
    np.testing.assert_array_equal(frozen["val_loss"][:, 0], frozen["val_loss"][:, 2])
    plain = make_forecast_trainer(MODEL, epochs=3, batch_size=16, learning_rate=0.05)(KEYS, *DATA)
    scheduled = make_optimizer(0.05, 9, schedule="cosine", final_lr_factor=0.1, clip_norm=0.01)
    other = make_forecast_trainer(MODEL, epochs=3, batch_size=16, tx=scheduled)(KEYS, *DATA)
    assert not np.array_equal(plain["train_loss"], other["train_loss"])


def test_the_classifier_trainer_takes_a_transformation_too():
    x = jax.random.normal(jax.random.key(1), (24, 5, 2))
    y = (x[:, :, 0].sum(1) > 0).astype(jnp.int32)
    mask = jnp.ones((24, 5), bool)
    model = SequenceClassifier(num_classes=2, hidden_size=8, features=2)
    data = (x[:16], y[:16], mask[:16], x[16:], y[16:], mask[16:])
    out = make_best_epoch_trainer(model, epochs=4, batch_size=8, tx=optax.set_to_zero())(KEYS, *data)
    np.testing.assert_array_equal(out["val_loss"][:, 0], out["val_loss"][:, 3])
    assert set(out) == {"params", "best_epoch", "train_loss", "val_loss", "val_accuracy"}


@pytest.mark.parametrize("given", [{}, {"learning_rate": 0.01, "tx": optax.adam(0.01)}])
def test_exactly_one_of_rate_and_transformation(given):
    with pytest.raises(ArgumentError, match="tx, learning_rate: expected exactly one"):
        make_forecast_trainer(MODEL, epochs=1, batch_size=4, **given)
