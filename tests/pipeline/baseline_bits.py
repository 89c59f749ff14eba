"""Prints a sha256 of the raw float64 bits the stages' classical baselines compute: statsmodels'
ETS forecasts of two real series on the forecast stage's rolling origins, and the class
probabilities of scikit-learn's logistic regression on JapaneseVowels' summary features.

Run as a script by tests/pipeline/test_baseline_portability.py, in a fresh process each time
(the pins act when NumPy and OpenBLAS load): `python baseline_bits.py [--unpinned]`.
"""

import sys

if "--unpinned" not in sys.argv:
    import lstm_pipeline.pinned  # noqa: F401  (first, as in a stage script)

import hashlib
import warnings

import numpy as np

from lstm_pipeline import forecasting, ucr

from lstm_pipeline.baselines import forecasting as forecast_baselines
from lstm_pipeline.baselines import classification as ts_baselines
from lstm_pipeline.extras import require
from lstm_pipeline.config.params import load_params
from lstm_pipeline.series import load_series

warnings.simplefilter("ignore")  # statsmodels' convergence warnings: the bits are the point here
digest = hashlib.sha256()
forecast = load_params("params.yaml").forecast
for source in forecast.series.values():
    y = load_series(source).values[:, 0]
    for origin in forecasting.test_origins(len(y), source.horizon, forecast.origins)[:4]:
        digest.update(forecast_baselines.ets(y, origin, source.horizon, source.season).tobytes())

train = ucr.load(ucr.builtin_path("JapaneseVowels", "TRAIN"))
features = ts_baselines.summary_features(train.x, train.mask)
scaled = require("sklearn.preprocessing").StandardScaler().fit_transform(features)
model = require("sklearn.linear_model").LogisticRegression(max_iter=5000).fit(scaled, train.labels)
digest.update(model.predict_proba(scaled).astype(np.float64).tobytes())
print(digest.hexdigest())
