"""Stage forecast@<series>: LSTM forecasters (direct and recursive, `seeds` runs each in one
vmapped program) on a real series, scored on rolling origins beside naive, seasonal naive and
ETS -> metrics JSON (MASE, sMAPE, interval coverage), forecast plot PNG, the direct model."""

import lstm_pipeline.pinned  # noqa: F401  (first: pins NumPy's and OpenBLAS's kernels before they load)

import time
from pathlib import Path

import jax
import numpy as np

from lstm_jax.io import save_checkpoint, fit_standardizer, standardize, SPECIALS, Vocabulary
from lstm_jax.errors import ConfigError
from lstm_jax.nn import Forecaster
from lstm_jax.training import make_forecast_trainer, mase, smape, windows as cut_windows
from lstm_pipeline import adapter, forecasting
from lstm_pipeline.baselines import forecasting as forecast_baselines
from lstm_pipeline.plots import forecast_plot
from lstm_pipeline.series import load_series
from lstm_pipeline.stage import run_stage, seed_summary, write_metrics

STRATEGIES = ("direct", "recursive")


def arguments(parser):
    parser.add_argument("--series", required=True, help="a key of forecast.series in params.yaml")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--plot", type=Path, required=True, help="forecasts-against-actuals PNG to write")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder for the direct model")


def scores(y, origins, forecasts, season) -> dict:
    """MASE and sMAPE of forecasts float[O, H] of y[:, 0] at `origins`, averaged over origins."""
    actual = np.stack([y[o : o + forecasts.shape[1], 0] for o in origins])
    insample = [y[:o, 0] for o in origins]
    return {"mase": mase(actual, forecasts, insample, season), "smape": smape(actual, forecasts)}


def fit_lstm(cfg, source, tf, z, first, strategy):
    """Train `cfg.seeds` runs of one strategy on the modelled series z float32[N', F] up to
    `first`; returns (model, trainer output, validation origins)."""
    horizon = source.horizon if strategy == "direct" else 1
    x, y = cut_windows(z[: first - tf.offset], source.lookback, horizon)
    n_val = max(1, round(len(x) * cfg.validation_fraction))
    if n_val >= len(x):
        raise ConfigError(f"forecast: {len(x)} training windows leave none to train on after validation")
    model = Forecaster(features=z.shape[1], horizon=horizon, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers)
    epochs = source.epochs or cfg.epochs
    tx = adapter.many_runs_optimizer(cfg.optimizer, epochs=epochs, rows=len(x) - n_val, batch_size=cfg.batch_size)
    trainer = make_forecast_trainer(model, epochs=epochs, batch_size=cfg.batch_size, tx=tx, loss=cfg.loss)
    keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
    out = jax.device_get(trainer(keys, x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]))
    # Window i reads s[i : i + L]; its target starts at y index i + L + offset.
    val_origins = np.arange(len(x) - n_val, len(x)) + source.lookback + tf.offset
    return model, out, val_origins[val_origins + source.horizon <= first]


def main(params, args):
    cfg = params.forecast
    if args.series not in cfg.series:
        raise ConfigError(f"--series: expected one of {sorted(cfg.series)}, found {args.series!r}")
    source = cfg.series[args.series]
    start = time.perf_counter()
    series = load_series(source)
    y, horizon, season = series.values, source.horizon, source.season
    origins = forecasting.test_origins(len(y), horizon, cfg.origins)
    first = int(origins[0])
    if first - source.lookback - source.difference < season + horizon:
        raise ConfigError(f"forecast.series.{args.series}: {len(y)} steps are too few for these origins and lookback")
    tf = forecasting.Transform(y, source.difference)
    # Scaling statistics from the part before the first test origin only.
    mean, std = fit_standardizer(tf.s[: first - tf.offset])
    z = standardize(tf.s, mean, std)

    metrics = {
        "series": args.series,
        "steps": len(y),
        "columns": series.columns,
        "horizon": horizon,
        "season": season,
        "origins": len(origins),
        "first_origin": series.times[first],
        "lstm": {},
    }
    plotted = {}
    for strategy in STRATEGIES:
        model, out, val_origins = fit_lstm(cfg, source, tf, z, first, strategy)
        steps = None if strategy == "direct" else horizon
        runs = forecasting.model_forecasts(model, out["params"], tf, origins, (mean, std), source.lookback, steps)
        ensemble = runs.mean(0)
        val_runs = forecasting.model_forecasts(
            model, out["params"], tf, val_origins, (mean, std), source.lookback, steps
        )
        val_actual = np.stack([y[o : o + horizon, 0] for o in val_origins])
        half = forecasting.interval_halfwidths(val_runs.mean(0) - val_actual, cfg.interval)
        actual = np.stack([y[o : o + horizon, 0] for o in origins])
        per_run = [scores(y, origins, r, season)["mase"] for r in runs]
        metrics["lstm"][strategy] = {
            **scores(y, origins, ensemble, season),
            "mase_per_seed": seed_summary(per_run),
            "interval_coverage": float((np.abs(actual - ensemble) <= half).mean()),
            "best_epoch": [int(e) for e in out["best_epoch"]],
        }
        plotted[f"LSTM {strategy}"] = (ensemble, half)
        if strategy == "direct":
            best = int(np.argmin(out["val_loss"].min(1)))
            save_checkpoint(
                args.model,
                model=model,
                params=jax.tree.map(lambda p, i=best: p[i], out["params"]),
                vocab=Vocabulary(SPECIALS),
                metadata={
                    "task": "forecast",
                    "series": args.series,
                    "columns": series.columns,
                    "lookback": source.lookback,
                    "difference": source.difference,
                    "scaler": {"mean": mean.tolist(), "std": std.tolist()},
                    "seed_index": best,
                },
            )
    lstm_seconds = time.perf_counter() - start

    target = y[:, 0]
    baseline_forecasts = {
        "naive": np.stack([forecast_baselines.naive(target, o, horizon) for o in origins]),
        "seasonal_naive": np.stack([forecast_baselines.seasonal_naive(target, o, horizon, season) for o in origins]),
        "ets": np.stack([forecast_baselines.ets(target, o, horizon, season) for o in origins]),
    }
    # 4 decimals, for reading (the bits are the same on every machine: lstm_pipeline.pinned).
    metrics["baselines"] = {
        name: {k: round(v, 4) for k, v in scores(y, origins, f, season).items()}
        for name, f in baseline_forecasts.items()
    }
    best_lstm = min(metrics["lstm"][s]["mase"] for s in STRATEGIES)
    metrics["lstm_mase_over_seasonal_naive"] = best_lstm / metrics["baselines"]["seasonal_naive"]["mase"]
    metrics["beats_seasonal_naive"] = bool(best_lstm < metrics["baselines"]["seasonal_naive"]["mase"])
    write_metrics(args.metrics, metrics)
    forecast_plot(
        args.plot,
        series.times,
        target,
        origins,
        plotted,
        {k: baseline_forecasts[k] for k in ("seasonal_naive", "ets")},
        title=f"{args.series}: forecasts from the first and last test origin ({cfg.interval:.0%} intervals)",
        dpi=params.evaluate.dpi,
    )
    line = ", ".join(f"LSTM {s} MASE {metrics['lstm'][s]['mase']:.3f}" for s in STRATEGIES)
    base = ", ".join(f"{k} {v['mase']:.3f}" for k, v in metrics["baselines"].items())
    print(
        f"forecast@{args.series}: {line} ({lstm_seconds:.1f}s); {base}"
        + ("" if metrics["beats_seasonal_naive"] else "; the LSTM LOSES to seasonal naive")
    )


if __name__ == "__main__":
    run_stage(main, __doc__, arguments)
