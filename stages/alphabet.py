"""Stage alphabet@<framing>: one alphabet framing over `alphabet.seeds` seeds, real and
scrambled alphabet -> metrics/alphabet/<framing>.json, plots/alphabet/<framing>.csv."""

import argparse
import sys
import time

from lstm_jax.cli import run_stage
from lstm_jax.errors import ConfigError
from lstm_jax.experiments import run_alphabet_framing
from lstm_jax.outputs import write_csv, write_json
from lstm_jax.timing import report


def main(params, framing_name: str):
    cfg = params.alphabet
    if framing_name not in cfg.framings:
        raise ConfigError(f"--framing: expected one of {sorted(cfg.framings)}, found {framing_name!r}")
    start = time.perf_counter()
    metrics, loss_rows, timers = run_alphabet_framing(cfg, cfg.framings[framing_name])
    write_json(f"metrics/alphabet/{framing_name}.json", metrics)
    write_csv(f"plots/alphabet/{framing_name}.csv", loss_rows)
    summary = {a: round(metrics[a]["train_accuracy"]["mean"], 3) for a in ("plain", "scrambled")}
    print(f"alphabet@{framing_name}: train accuracy (mean over seeds) {summary}")
    if "recital" in metrics:
        print(f"alphabet@{framing_name}: from 'A': {metrics['recital']['plain']['recited'][0]}, "
              f"cold 'K' -> {metrics['recital']['plain']['cold_prediction']}")
    print(f"alphabet@{framing_name}: {report(timers)}, total {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--framing", required=True)
    known, rest = parser.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    run_stage(lambda params: main(params, known.framing), __doc__)
