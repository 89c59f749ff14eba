"""Stage alphabet@<framing>: one alphabet framing over `alphabet.seeds` seeds, real and
scrambled alphabet -> its metrics JSON and loss-curve CSV."""

import lstm_pipeline.pinned  # noqa: F401  (first: pins NumPy's and OpenBLAS's kernels before they load)

import time
from pathlib import Path

from lstm_jax.errors import ConfigError
from lstm_jax.io import write_csv
from lstm_jax.training import report
from lstm_pipeline.experiments import run_alphabet_framing
from lstm_pipeline.stage import run_stage, write_metrics


def arguments(parser):
    parser.add_argument("--framing", required=True, help="a key of alphabet.framings in params.yaml")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--plot", type=Path, required=True, help="per-epoch loss CSV to write")


def main(params, args):
    cfg, name = params.alphabet, args.framing
    if name not in cfg.framings:
        raise ConfigError(f"--framing: expected one of {sorted(cfg.framings)}, found {name!r}")
    start = time.perf_counter()
    metrics, loss_rows, timers = run_alphabet_framing(cfg, cfg.framings[name])
    write_metrics(args.metrics, metrics)
    write_csv(args.plot, loss_rows)
    summary = {a: round(metrics[a]["train_accuracy"]["mean"], 3) for a in ("plain", "scrambled")}
    print(f"alphabet@{name}: train accuracy (mean over seeds) {summary}")
    if "recital" in metrics:
        print(
            f"alphabet@{name}: from 'A': {metrics['recital']['plain']['recited'][0]}, "
            f"cold 'K' -> {metrics['recital']['plain']['cold_prediction']}"
        )
    print(f"alphabet@{name}: {report(timers)}, total {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    run_stage(main, __doc__, arguments)
