"""The real-data stages' parts: loaders, DTW, baselines, rolling origins, params checks."""

from __future__ import annotations

import itertools
from pathlib import Path

import jax
import numpy as np
import pytest

from lstm_jax.errors import ConfigError
from lstm_jax.nn import SequenceClassifier
from lstm_pipeline import forecasting, ucr
from lstm_pipeline.baselines import forecasting as forecast_baselines
from lstm_pipeline.baselines import classification as ts_baselines
from lstm_pipeline.config.params import load_params
from lstm_pipeline.series import load_series

ROOT = Path(__file__).resolve().parents[2]


def slow_dtw(a, b):
    """Textbook DTW with squared Euclidean step costs, in plain Python."""
    total = {(-1, -1): 0.0}
    for i, j in itertools.product(range(len(a)), range(len(b))):
        step = float(((a[i] - b[j]) ** 2).sum())
        total[i, j] = step + min(
            total.get((i - 1, j), np.inf), total.get((i, j - 1), np.inf), total.get((i - 1, j - 1), np.inf)
        )
    return total[len(a) - 1, len(b) - 1]


def test_dtw_of_unequal_lengths_matches_the_textbook_recursion():
    rng = np.random.default_rng(0)
    a_len, b_len = np.array([3, 7, 5]), np.array([6, 2, 7, 4])
    a, b = rng.normal(size=(3, 7, 2)), rng.normal(size=(4, 7, 2))
    a[0, 3:], b[1, 2:] = 99.0, -99.0  # padding must not matter
    got = ts_baselines.dtw_distances(a, a_len, b, b_len, chunk=2)  # several chunks
    want = [[slow_dtw(a[i, : a_len[i]], b[j, : b_len[j]]) for j in range(4)] for i in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert ts_baselines.dtw_distances(a[:1], a_len[:1], a[:1], a_len[:1])[0, 0] == 0.0


def test_nearest_neighbour_and_summary_features():
    assert list(ts_baselines.nearest_neighbour(np.array([[3.0, 1.0, 1.0], [0.5, 2.0, 0.1]]), [7, 8, 9])) == [8, 9]
    x = np.array([[[1.0], [2.0], [3.0], [0.0]]])
    f = ts_baselines.summary_features(x, np.array([[True, True, True, False]]))
    mean, std, low, high, first, last, slope, n = f[0]
    assert (mean, low, high, first, last, slope, n) == (2.0, 1.0, 3.0, 1.0, 3.0, 1.0, 3.0)
    assert std == pytest.approx(np.sqrt(2 / 3))


def test_masked_padding_classifies_like_the_unpadded_sequence():
    model = SequenceClassifier(num_classes=3, hidden_size=8, features=2, bidirectional=True)
    rng = np.random.default_rng(1)
    short = rng.normal(size=(1, 4, 2)).astype(np.float32)
    padded = np.concatenate([short, np.full((1, 3, 2), 1e3, np.float32)], axis=1)
    params = model.init(jax.random.PRNGKey(0), short)["params"]
    alone, _ = model.apply({"params": params}, short)
    masked, _ = model.apply({"params": params}, padded, mask=np.array([[True] * 4 + [False] * 3]))
    # Other shapes compile to other programs: equal to float32 rounding, not bit for bit.
    np.testing.assert_allclose(np.asarray(alone), np.asarray(masked), rtol=1e-6, atol=1e-7)


def test_long_csv_loader_pads_and_checks(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("case,label,f1,f2\na,x,1,2\nb,y,5,6\na,x,3,4\n")
    data = ucr.load(path)
    assert data.labels == ["x", "y"] and data.x.shape == (2, 2, 2)
    assert data.mask.tolist() == [[True, True], [True, False]]
    assert data.x[0].tolist() == [[1, 2], [3, 4]]
    path.write_text("case,label,f1\na,x,1\na,y,2\n")
    with pytest.raises(ConfigError, match="expected label 'x'"):
        ucr.load(path)
    with pytest.raises(ConfigError, match="never occur in the training split"):
        ucr.encode(["a"], ["a", "b"], "d")


def test_builtin_archive_dataset_loads_with_its_true_lengths():
    data = ucr.load(ucr.builtin_path("JapaneseVowels", "TRAIN"))
    assert data.x.shape[0] == 270 and data.x.shape[2] == 12
    assert data.lengths.min() >= 7 and data.lengths.max() == data.x.shape[1]
    with pytest.raises(ConfigError, match="JapaneseVowels"):
        ucr.builtin_path("NoSuchSet", "TRAIN")


def test_origins_and_baselines_see_only_the_past():
    y = np.arange(40, dtype=np.float64)[:, None] ** 1.5
    origins = forecasting.test_origins(len(y), horizon=4, origins=3)
    assert origins.tolist() == [34, 35, 36] and origins[-1] + 4 == len(y)
    changed = y.copy()
    changed[34:] = -1.0  # the future of the first origin
    for tf in (forecasting.Transform(y, True), forecasting.Transform(changed, True)):
        np.testing.assert_array_equal(tf.context(34, 5), forecasting.Transform(y, True).context(34, 5))
    assert forecast_baselines.naive(changed[:, 0], 34, 3).tolist() == [y[33, 0]] * 3
    assert forecast_baselines.seasonal_naive(np.arange(20.0), 12, 5, 4).tolist() == [8, 9, 10, 11, 8]
    tf = forecasting.Transform(y, True)
    np.testing.assert_allclose(tf.to_target(34, tf.s[33:37, 0]), y[34:38, 0])


def test_conformal_halfwidths():
    errors = np.array([[1.0, -4.0], [-2.0, 3.0], [3.0, 1.0], [0.5, 2.0]])
    assert forecasting.interval_halfwidths(errors, 0.5).tolist() == [2.0, 3.0]  # 3rd smallest of 4
    assert forecasting.interval_halfwidths(errors, 0.99).tolist() == [3.0, 4.0]


def test_statsmodels_series_load():
    params = load_params(ROOT / "params.yaml")
    co2 = load_series(params.forecast.series["co2"])
    assert co2.values.shape == (526, 1) and co2.times[0] == "1958-03" and np.isfinite(co2.values).all()


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"builtin": "BasicMotions", "train": "series/a.ts", "test": "series/b.ts"}, "either builtin or both"),
        ({"train": "series/a.ts"}, "either builtin or both"),
        ({"train": "/etc/a.ts", "test": "series/b.ts"}, "under series/"),
        ({"train": "series/a.txt", "test": "series/b.ts"}, "a .ts or .csv file"),
        ({"train": "series/missing.ts", "test": "series/missing.ts"}, "no such file"),
    ],
)
def test_classify_dataset_params_are_checked(tmp_path, entry, message):
    raw = __import__("yaml").safe_load((ROOT / "params.yaml").read_text())
    raw["classify"]["datasets"] = {"mine": entry}
    import lstm_pipeline.config.params as params_module

    with pytest.raises(ConfigError, match=message):
        params_module.parse_params(raw, root=tmp_path)


def test_forecast_series_params_are_checked(tmp_path):
    raw = __import__("yaml").safe_load((ROOT / "params.yaml").read_text())
    import lstm_pipeline.config.params as params_module

    raw["forecast"]["series"] = {"mine": {"builtin": "nope", "season": 1, "horizon": 2, "lookback": 3}}
    with pytest.raises(ConfigError, match="forecast.series.mine.builtin"):
        params_module.parse_params(raw, root=tmp_path)
    raw["forecast"]["series"] = {"mine": {"path": "series/y.csv", "season": 1, "horizon": 2, "lookback": 3}}
    with pytest.raises(ConfigError, match="time_column"):
        params_module.parse_params(raw, root=tmp_path)


def _saved(tmp_path, model, metadata):
    from lstm_jax.io import save_checkpoint
    from lstm_jax.io import SPECIALS, Vocabulary

    params = model.init(jax.random.PRNGKey(0), model.example_input())["params"]
    save_checkpoint(tmp_path / "model", model=model, params=params, vocab=Vocabulary(SPECIALS), metadata=metadata)
    return tmp_path / "model", params


def test_classify_command_scales_like_training_and_names_classes(tmp_path, capsys):
    from lstm_pipeline.cli import main

    model = SequenceClassifier(num_classes=2, hidden_size=4, features=2)
    scaler = {"mean": [1.0, -1.0], "std": [2.0, 0.5]}
    folder, params = _saved(tmp_path, model, {"task": "classify", "classes": ["no", "yes"], "scaler": scaler})
    (tmp_path / "d.csv").write_text("case,label,a,b\nc1,yes,1,2\nc1,yes,3,4\nc2,no,5,6\n")
    assert main(["classify", str(folder), str(tmp_path / "d.csv")]) == 0
    x = (np.array([[[1, 2], [3, 4]], [[5, 6], [0, 0]]], np.float32) - [1.0, -1.0]) / [2.0, 0.5]
    mask = np.array([[True, True], [True, False]])
    logits, _ = model.apply({"params": params}, (x * mask[..., None]).astype(np.float32), mask=mask)
    want = [["no", "yes"][i] for i in np.asarray(logits).argmax(-1)]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in lines[:2]] == want and lines[-1].startswith("accuracy")


def test_forecast_command_continues_the_series(tmp_path):
    from lstm_jax.nn import Forecaster
    from lstm_pipeline.serve import classify_file, forecast_file

    model = Forecaster(features=1, horizon=3, hidden_size=4)
    meta = {"task": "forecast", "columns": ["y"], "lookback": 4, "difference": True,
            "scaler": {"mean": [0.5], "std": [2.0]}}  # fmt: skip
    folder, params = _saved(tmp_path, model, meta)
    y = np.array([1.0, 2.0, 4.0, 3.0, 5.0, 8.0])
    (tmp_path / "s.csv").write_text("t,y\n" + "".join(f"{i},{v}\n" for i, v in enumerate(y)))
    last, forecast = forecast_file(folder, tmp_path / "s.csv", "t", None)
    context = ((np.diff(y)[-4:] - 0.5) / 2.0).astype(np.float32)[None, :, None]
    steps = np.asarray(model.apply({"params": params}, context)[0])[0, :, 0] * 2.0 + 0.5
    assert last == "5"
    np.testing.assert_allclose(forecast, 8.0 + np.cumsum(steps), rtol=1e-6)
    with pytest.raises(ConfigError, match="expected a model saved by the classify stage"):
        classify_file(folder, tmp_path / "s.csv")


def test_a_missing_extra_is_one_line_naming_the_install():
    from lstm_pipeline.extras import require

    with pytest.raises(ConfigError, match=r"no_such_module.datasets: not installed .*pip install -e '\.\[realdata\]'"):
        require("no_such_module.datasets")


def test_the_library_imports_none_of_the_realdata_extra():
    import subprocess
    import sys

    code = "import sys, lstm_jax, lstm_jax.training, lstm_jax.io, lstm_jax.nn; " + (
        "print(sorted(m for m in ('sktime', 'statsmodels', 'sklearn', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
