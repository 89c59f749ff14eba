"""Stage baseline: the classical baseline of the char model, an interpolated modified Kneser-Ney
character n-gram (lstm_pipeline.baselines.kneser_ney), trained on exactly the characters the model trains on and
scored on exactly the held-out characters it is scored on -> bits per character beside it."""

import lstm_pipeline.pinned  # noqa: F401  (first: pins NumPy's and OpenBLAS's kernels before they load)

import time
from pathlib import Path

import numpy as np

from lstm_jax.io import window_stream, load_dataset, load_meta, write_csv
from lstm_pipeline.baselines.kneser_ney import KneserNey, bits_per_char, select_order
from lstm_pipeline.stage import run_stage, write_metrics


def arguments(parser):
    parser.add_argument("--data", type=Path, required=True, help="the char model's dataset, e.g. data/python_docs")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--orders-plot", type=Path, required=True, help="CSV: validation bpc per order")


def main(params, args):
    cfg = params.baseline
    start = time.perf_counter()
    ds, meta = load_dataset(args.data), load_meta(args.data)
    train = window_stream(ds.train, meta["stride"])
    heldout = window_stream(ds.heldout, ds.heldout.shape[1] - 1)
    vocab_size = len(ds.vocab)
    chosen = select_order(train, vocab_size, cfg.orders, cfg.validation_fraction)
    model = KneserNey(chosen["order"], vocab_size).fit(train)
    # The model's held-out targets are heldout[1:], each predicted from what precedes it.
    log_probs = model.log_probs(heldout, start=1)
    assert log_probs.shape[0] == ds.heldout[:, 1:].size
    loss = float(-np.mean(log_probs))
    metrics = {
        "order": chosen["order"],
        "heldout_loss": loss,
        "heldout_bpc": bits_per_char(log_probs),
        "heldout_perplexity": float(np.exp(loss)),
        "train_characters": int(len(train)),
        "heldout_characters": int(log_probs.shape[0]),
        "validation_bpc": {str(k): v for k, v in chosen["validation_bpc"].items()},
    }
    write_metrics(args.metrics, metrics)
    write_csv(args.orders_plot, [{"order": k, "validation_bpc": v} for k, v in chosen["validation_bpc"].items()])
    print(
        f"baseline: Kneser-Ney order {chosen['order']}: held-out {metrics['heldout_bpc']:.4f} bits/char "
        f"({time.perf_counter() - start:.1f}s)"
    )


if __name__ == "__main__":
    run_stage(main, __doc__, arguments)
