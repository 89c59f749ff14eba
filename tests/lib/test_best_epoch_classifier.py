"""make_best_epoch_trainer: each seed keeps the parameters of its lowest-validation-loss epoch."""

import jax
import numpy as np

from lstm_jax.training import make_best_epoch_trainer, make_predict_classes
from lstm_jax.nn import SequenceClassifier


def data(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int32)
    x = rng.normal(size=(n, 6, 3)).astype(np.float32) + y[:, None, None] * 0.7
    mask = np.arange(6)[None, :] < rng.integers(2, 7, n)[:, None]
    return x * mask[..., None], y, mask


def test_kept_parameters_are_the_best_epochs_bit_for_bit():
    model = SequenceClassifier(num_classes=2, hidden_size=8, features=3)
    train, val = data(48, 0), data(16, 1)
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    long = jax.device_get(
        make_best_epoch_trainer(model, epochs=12, batch_size=8, learning_rate=0.05)(keys, *train, *val)
    )
    assert long["val_loss"].shape == (2, 12) and long["val_accuracy"].shape == (2, 12)
    for r in range(2):
        best = int(long["best_epoch"][r])
        assert best == int(np.argmin(long["val_loss"][r])) + 1
    # A run stopped at seed 0's best epoch retraces the long run and ends on the kept parameters.
    b = int(long["best_epoch"][0])
    short = jax.device_get(
        make_best_epoch_trainer(model, epochs=b, batch_size=8, learning_rate=0.05)(keys, *train, *val)
    )
    np.testing.assert_array_equal(short["val_loss"][0], long["val_loss"][0, :b])
    for got, want in zip(jax.tree.leaves(short["params"]), jax.tree.leaves(long["params"])):
        np.testing.assert_array_equal(got[0], want[0])
    predicted = make_predict_classes(model)(long["params"], val[0], val[2])
    assert predicted.shape == (2, 16) and float((np.asarray(predicted) == val[1]).mean()) > 0.6
