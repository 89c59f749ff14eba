"""Stage classify@<dataset>: LSTM sequence classifiers on a real labelled dataset, `seeds` of
them in one vmapped program, beside 1-NN DTW and a logistic regression on summary features ->
metrics JSON, per-epoch curves CSV, confusion-matrix PNG, and the best seed's model."""

import lstm_pipeline.pinned  # noqa: F401  (first: pins NumPy's and OpenBLAS's kernels before they load)

import time
from pathlib import Path

import jax
import numpy as np

from lstm_jax.io import save_checkpoint, write_csv, fit_standardizer, standardize, SPECIALS, Vocabulary
from lstm_jax.training import make_best_epoch_trainer, make_predict_classes
from lstm_jax.errors import ConfigError
from lstm_jax.nn import SequenceClassifier
from lstm_pipeline import adapter, ucr
from lstm_pipeline.baselines import classification as ts_baselines
from lstm_pipeline.plots import heatmap
from lstm_pipeline.stage import run_stage, seed_summary, write_metrics


def arguments(parser):
    parser.add_argument("--dataset", required=True, help="a key of classify.datasets in params.yaml")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--curves", type=Path, required=True, help="per-epoch CSV (means over seeds) to write")
    parser.add_argument("--confusion", type=Path, required=True, help="confusion-matrix PNG to write")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder for the best seed's model")


def load_splits(source):
    if source.builtin is not None:
        return ucr.load(ucr.builtin_path(source.builtin, "TRAIN")), ucr.load(ucr.builtin_path(source.builtin, "TEST"))
    return ucr.load(Path(source.train)), ucr.load(Path(source.test))


def validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit indices, validation indices) of n training cases: a seeded permutation's tail."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * fraction))
    if n_val >= n:
        raise ConfigError(f"classify.validation_fraction: leaves no training case out of {n}")
    return np.sort(order[:-n_val]), np.sort(order[-n_val:])


def main(params, args):
    cfg = params.classify
    if args.dataset not in cfg.datasets:
        raise ConfigError(f"--dataset: expected one of {sorted(cfg.datasets)}, found {args.dataset!r}")
    start = time.perf_counter()
    train, test = load_splits(cfg.datasets[args.dataset])
    if train.x.shape[2] != test.x.shape[2]:
        raise ConfigError(f"{args.dataset}: expected as many features in test as in train ({train.x.shape[2]})")
    classes, y_train, y_test = ucr.encode(train.labels, test.labels, args.dataset)
    fit, val = validation_split(len(y_train), cfg.validation_fraction, cfg.seed)

    # Scaling statistics from the cases the LSTM trains on, never from validation or test.
    mean, std = fit_standardizer(train.x[fit], train.mask[fit])
    x_train = standardize(train.x, mean, std) * train.mask[..., None]
    x_test = standardize(test.x, mean, std) * test.mask[..., None]

    model = SequenceClassifier(
        num_classes=len(classes),
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        bidirectional=cfg.bidirectional,
        features=train.x.shape[2],
    )
    epochs = cfg.datasets[args.dataset].epochs or cfg.epochs
    rows = len(fit)  # indices
    tx = adapter.many_runs_optimizer(cfg.optimizer, epochs=epochs, rows=rows, batch_size=cfg.batch_size)
    trainer = make_best_epoch_trainer(model, epochs=epochs, batch_size=cfg.batch_size, tx=tx)
    keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.seeds)
    out = jax.device_get(
        trainer(keys, x_train[fit], y_train[fit], train.mask[fit], x_train[val], y_train[val], train.mask[val])
    )
    predictions = np.asarray(make_predict_classes(model)(out["params"], x_test, test.mask))
    accuracy = (predictions == y_test[None]).mean(1)
    lstm_seconds = time.perf_counter() - start

    baselines_start = time.perf_counter()
    # DTW on the raw series, as the archive's published DTW_D (scaling first changed it both ways:
    # JapaneseVowels 0.949 -> 0.959, BasicMotions 0.975 -> 0.900).
    dtw_raw = ts_baselines.dtw_distances(test.x, test.lengths, train.x, train.lengths)
    baselines = {
        "dtw_1nn": float((ts_baselines.nearest_neighbour(dtw_raw, y_train) == y_test).mean()),
        "summary_logistic": float(
            (ts_baselines.summary_logistic(x_train, train.mask, y_train, x_test, test.mask) == y_test).mean()
        ),
    }
    baselines_seconds = time.perf_counter() - baselines_start

    best_dtw = baselines["dtw_1nn"]
    metrics = {
        "dataset": args.dataset,
        "classes": len(classes),
        "train_cases": len(y_train),
        "validation_cases": len(val),
        "test_cases": len(y_test),
        "features": int(train.x.shape[2]),
        "lengths": {"min": int(min(train.lengths.min(), test.lengths.min())), "max": int(test.x.shape[1])},
        "lstm": {
            "test_accuracy": seed_summary(accuracy, extremes=True),
            "per_seed": [float(a) for a in accuracy],
            "best_epoch": [int(e) for e in out["best_epoch"]],
        },
        "baselines": baselines,
        "published": ts_baselines.PUBLISHED.get(args.dataset),
        "lstm_minus_dtw": float(accuracy.mean()) - best_dtw,
        "beats_dtw": bool(accuracy.mean() >= best_dtw),
    }
    write_metrics(args.metrics, metrics)
    write_csv(
        args.curves,
        [
            {
                "epoch": e + 1,
                "train_loss": float(out["train_loss"][:, e].mean()),
                "val_loss": float(out["val_loss"][:, e].mean()),
                "val_accuracy": float(out["val_accuracy"][:, e].mean()),
            }
            for e in range(epochs)
        ],
    )
    confusion = np.zeros((len(classes), len(classes)))
    for row in predictions:
        np.add.at(confusion, (y_test, row), 1.0)
    heatmap(
        args.confusion,
        confusion / np.maximum(confusion.sum(1, keepdims=True), 1.0),
        xlabel="predicted class",
        ylabel="true class",
        title=f"{args.dataset}: LSTM test confusion (rows sum to 1, all seeds)",
        dpi=params.evaluate.dpi,
    )
    best = int(np.argmax(out["val_accuracy"].max(1)))  # the seed that validated best, not the best on test
    save_checkpoint(
        args.model,
        model=model,
        params=jax.tree.map(lambda p: p[best], out["params"]),
        vocab=Vocabulary(SPECIALS),
        metadata={
            "task": "classify",
            "dataset": args.dataset,
            "classes": classes,
            "scaler": {"mean": mean.tolist(), "std": std.tolist()},
            "seed_index": best,
        },
    )
    print(
        f"classify@{args.dataset}: LSTM test accuracy {accuracy.mean():.3f} +/- {accuracy.std():.3f} "
        f"({cfg.seeds} seeds, {lstm_seconds:.1f}s); 1-NN DTW {baselines['dtw_1nn']:.3f} "
        f"summary logistic {baselines['summary_logistic']:.3f} "
        f"({baselines_seconds:.1f}s)" + ("" if metrics["beats_dtw"] else "; the LSTM LOSES to 1-NN DTW")
    )


if __name__ == "__main__":
    run_stage(main, __doc__, arguments)
