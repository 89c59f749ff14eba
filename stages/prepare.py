"""Stage prepare: every text in `prepare.texts` -> <out>/<name>/{train,heldout}.npy, vocab.json,
dataset.json. Texts are streamed (lstm_jax.io), so a large corpus is held once, as ids."""

import lstm_pipeline.pinned  # noqa: F401  (first: pins NumPy's and OpenBLAS's kernels before they load)

from pathlib import Path

from lstm_jax.io import prepare_dataset
from lstm_pipeline.stage import run_stage, write_metrics


def arguments(parser):
    parser.add_argument("--out", type=Path, required=True, help="folder of the prepared datasets, e.g. data")
    parser.add_argument("--metrics", type=Path, required=True, help="JSON summary, e.g. metrics/prepare.json")


def main(params, args):
    p = params.prepare
    summary = {}
    for name, src in p.texts.items():
        meta = prepare_dataset(
            src.chunks(Path(".")),
            args.out / name,
            seq_length=p.seq_length,
            stride=p.stride_of(name),
            heldout_fraction=p.heldout_fraction,
        )
        summary[name] = {k: meta[k] for k in ("characters", "vocab_size", "stride", "train_windows", "heldout_windows")}
        print(f"prepare: {name}: {summary[name]}")
    write_metrics(args.metrics, summary)


if __name__ == "__main__":
    run_stage(main, __doc__, arguments)
