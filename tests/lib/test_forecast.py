"""Forecasting: windows, scaling fitted on the training split, direct and recursive forecasts,
the best-epoch trainer, and the M4 measures against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax.errors import ArgumentError
from lstm_jax.nn import Forecaster
from lstm_jax.training import direct_forecast, make_forecast_trainer, mase, recursive_forecast, smape, windows
from lstm_jax.io import fit_standardizer, standardize, unstandardize


def init(model, seed=0):
    return model.init(jax.random.key(seed), model.example_input())["params"]


def context(batch=3, lookback=6, features=2, seed=1):
    return np.random.default_rng(seed).standard_normal((batch, lookback, features)).astype(np.float32)


# --- forecasts ---------------------------------------------------------------------------------


def test_recursive_forecast_equals_a_loop_of_one_step_forecasts():
    model = Forecaster(features=2, hidden_size=8)
    params, ctx = init(model), context()
    one_step = jax.jit(lambda p, w: model.apply({"params": p}, w)[0])  # compiled once, called 5 times
    window, expected = jnp.asarray(ctx), []
    for _ in range(5):
        y = one_step(params, window)  # [B, 1, F]
        expected.append(y[:, 0])
        window = jnp.concatenate([window[:, 1:], y], axis=1)  # append, drop the oldest step
    expected = np.stack(expected, axis=1)
    got = jax.jit(lambda p, c: recursive_forecast(model, p, c, 5))(params, ctx)
    assert got.shape == (3, 5, 2) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_direct_forecast_is_the_model_output():
    model = Forecaster(features=2, horizon=4, hidden_size=8, num_layers=2)
    params, ctx = init(model), context()
    got = jax.jit(lambda p, c: direct_forecast(model, p, c))(params, ctx)
    assert got.shape == (3, 4, 2)
    expected = jax.jit(lambda p, c: model.apply({"params": p}, c)[0])(params, ctx)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    state = model.initial_state(3)
    assert len(state) == 2 and state[-1].h.shape == (3, 8)


# --- M4 measures ---------------------------------------------------------------------------------


def test_smape_and_mase_by_hand():
    actual, forecast = [1.0, 2.0, 3.0], [1.0, 3.0, 2.0]
    # sMAPE = 200/3 * (0/2 + 1/5 + 1/5) = 80/3
    assert smape(actual, forecast) == pytest.approx(80 / 3, rel=1e-12)
    # mean |error| = 2/3; insample [1, 2, 4, 7]: m=1 diffs 1, 2, 3 -> 2; m=2 diffs 3, 5 -> 4
    insample = [1.0, 2.0, 4.0, 7.0]
    assert mase(actual, forecast, insample, 1) == pytest.approx(1 / 3, rel=1e-12)
    assert mase(actual, forecast, insample, 2) == pytest.approx(1 / 6, rel=1e-12)
    assert smape([0.0, 1.0], [0.0, 1.0]) == 0.0  # 0/0 counts as no error


def test_smape_and_mase_over_origins():
    actual = [[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]]
    forecast = [[1.0, 3.0, 2.0], [1.0, 2.0, 4.0]]
    # origin 2: sMAPE = 200/3 * (1/3 + 0 + 2/6) = 400/9; mean with 80/3 -> 320/9
    assert smape(actual, forecast) == pytest.approx(320 / 9, rel=1e-12)
    # origin 2: mean |error| = 1, insample [0, 2, 0] (its own length) diffs 2, 2 -> 2: MASE 1/2
    histories = [np.array([1.0, 2.0, 4.0, 7.0]), np.array([0.0, 2.0, 0.0])]
    assert mase(actual, forecast, histories, 1) == pytest.approx((1 / 3 + 1 / 2) / 2, rel=1e-12)
    same_length = [[1.0, 2.0, 4.0, 7.0], [0.0, 2.0, 0.0, 2.0]]
    assert mase(actual, forecast, same_length, 1) == pytest.approx((1 / 3 + 1 / 2) / 2, rel=1e-12)


def test_metric_errors():
    with pytest.raises(ArgumentError, match="forecast: expected the shape of actual"):
        smape([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ArgumentError, match="non-zero seasonal difference"):
        mase([1.0], [2.0], [3.0, 3.0, 3.0], 1)
    with pytest.raises(ArgumentError, match=r"insample\[0\]: expected float\[n\] with n > season = 2"):
        mase([1.0], [2.0], [1.0, 2.0], 2)
    with pytest.raises(ArgumentError, match="insample: expected 2 histories"):
        mase([[1.0], [2.0]], [[1.0], [2.0]], [[1.0, 2.0]], 1)


# --- windows and scaling -----------------------------------------------------------------------


def test_windows_shapes_and_contents():
    series = np.arange(20, dtype=np.float32).reshape(10, 2)
    x, y = windows(series, 3, 2)
    assert x.shape == (6, 3, 2) and y.shape == (6, 2, 2) and x.dtype == y.dtype == np.float32
    for i in range(6):
        np.testing.assert_array_equal(x[i], series[i : i + 3])
        np.testing.assert_array_equal(y[i], series[i + 3 : i + 5])
    np.testing.assert_array_equal(y[-1], series[8:10])
    assert windows(series[:5], 3, 2)[0].shape == (1, 3, 2)
    with pytest.raises(ArgumentError, match="series: expected at least lookback \\+ horizon = 5 steps, found 4"):
        windows(series[:4], 3, 2)


def test_scaling_is_fitted_on_the_training_split_only():
    rng = np.random.default_rng(0)
    series = rng.standard_normal((100, 2)) * [1.0, 5.0] + [3.0, -2.0]
    changed = series.copy()
    changed[70:] += 100.0  # the held-out part only
    mean, std = fit_standardizer(series[:70])
    mean2, std2 = fit_standardizer(changed[:70])
    np.testing.assert_array_equal(mean, mean2)
    np.testing.assert_array_equal(std, std2)
    assert mean.dtype == std.dtype == np.float32 and mean.shape == (2,)
    x, _ = windows(standardize(series, mean, std)[:70], 8, 1)
    x2, _ = windows(standardize(changed, mean2, std2)[:70], 8, 1)
    np.testing.assert_array_equal(x, x2)
    full_mean, _ = fit_standardizer(changed)
    assert not np.allclose(full_mean, mean, atol=1.0)  # fitting on everything would have leaked
    z = standardize(series[:70], mean, std)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(unstandardize(jnp.asarray(z), mean, std), series[:70], atol=1e-4)


def test_scaling_ignores_masked_steps_and_keeps_constant_features():
    x = np.zeros((2, 4, 2))
    x[..., 0] = [[1.0, 2.0, 1e6, np.nan], [3.0, 4.0, 5.0, np.nan]]
    x[..., 1] = 0.1  # constant
    mask = np.array([[True, True, False, False], [True, True, True, False]])
    mean, std = fit_standardizer(x, mask)
    valid = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(mean, [valid.mean(), 0.1], rtol=1e-7)
    np.testing.assert_allclose(std, [valid.std(), 1.0], rtol=1e-7)
    assert std[1] == 1.0
    np.testing.assert_allclose(standardize(x[mask], mean, std)[:, 1], 0.0, atol=1e-7)
    with pytest.raises(ArgumentError, match="at least one valid step"):
        fit_standardizer(x, np.zeros((2, 4), bool))
    with pytest.raises(ArgumentError, match="NaN or inf in feature 0"):
        fit_standardizer(x)
    with pytest.raises(ArgumentError, match=r"mask: expected bool\[2, 4\]"):
        fit_standardizer(x, np.ones((2, 3), bool))


# --- trainer -----------------------------------------------------------------------------------

EPOCHS, LOOKBACK, TRAIN = 10, 12, 200
TRAINER = dict(batch_size=32, learning_rate=0.03)


@pytest.fixture(scope="module")
def sine():
    rng = np.random.default_rng(0)
    t = np.arange(260)
    series = (np.sin(2 * np.pi * t / 16) + 0.1 * rng.standard_normal(t.size))[:, None]
    mean, std = fit_standardizer(series[:TRAIN])
    z = standardize(series, mean, std)
    x, y = windows(z[:TRAIN], LOOKBACK, 1)
    x_val, y_val = windows(z[TRAIN - LOOKBACK :], LOOKBACK, 1)
    model = Forecaster(features=1, hidden_size=8)
    keys = jax.random.split(jax.random.key(0), 2)
    out = make_forecast_trainer(model, epochs=EPOCHS, **TRAINER)(keys, x, y, x_val, y_val)
    return model, keys, (x, y, x_val, y_val), jax.tree.map(np.asarray, out)


def test_trainer_returns_the_params_of_the_best_epoch_bit_for_bit(sine):
    model, keys, data, out = sine
    assert out["train_loss"].shape == out["val_loss"].shape == (2, EPOCHS)
    assert out["best_epoch"].dtype == np.int32
    np.testing.assert_array_equal(out["best_epoch"], np.argmin(out["val_loss"], axis=1) + 1)
    k = int(np.argmin(out["best_epoch"]))  # the seed whose best epoch comes first
    best = int(out["best_epoch"][k])
    again = make_forecast_trainer(model, epochs=best, **TRAINER)(keys, *data)
    # Same keys, same per-epoch shuffling: the shorter run follows the same trajectory ...
    np.testing.assert_array_equal(again["val_loss"], out["val_loss"][:, :best])
    # ... and ends on the parameters the longer run kept.
    for a, b in zip(jax.tree.leaves(out["params"]), jax.tree.leaves(again["params"])):
        np.testing.assert_array_equal(a[k], np.asarray(b)[k])


def test_trained_forecaster_beats_the_naive_forecast(sine):
    model, _, (_, _, x_val, y_val), out = sine
    naive = np.mean((x_val[:, -1:] - y_val) ** 2)  # repeat the last value
    preds = jax.jit(jax.vmap(lambda p: direct_forecast(model, p, x_val)))(out["params"])  # seeds vmapped
    mse = np.mean((np.asarray(preds) - y_val) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(mse, out["val_loss"].min(axis=1), rtol=1e-5)
    assert np.all(mse < 0.5 * naive), (mse, naive)


# --- errors ------------------------------------------------------------------------------------


def test_errors_name_the_argument():
    with pytest.raises(ArgumentError, match="loss: expected one of \\['mae', 'mse'\\], found 'huber'"):
        make_forecast_trainer(Forecaster(features=1), epochs=1, batch_size=4, learning_rate=0.01, loss="huber")
    direct = Forecaster(features=2, horizon=3, hidden_size=8)
    with pytest.raises(ArgumentError, match="model.horizon: expected 1"):
        recursive_forecast(direct, init(direct), context(), 3)
    with pytest.raises(ArgumentError, match=r"x: expected float32\[B, L, 2\] \(features=2\), found shape \(3, 6, 3\)"):
        direct.apply({"params": init(direct)}, context(features=3))
    x, y = windows(np.zeros((20, 2)), 4, 1)
    trainer = make_forecast_trainer(direct, epochs=1, batch_size=4, learning_rate=0.01)
    with pytest.raises(ArgumentError, match=r"y_train: expected float32\[16, 3, 2\]"):
        trainer(jax.random.split(jax.random.key(0), 2), x, y, x, y)
