"""Stage prepare: every text in `prepare.texts` -> <out>/<name>/{train,heldout}.npy + vocab.json."""

from pathlib import Path

from lstm_jax.data import build_windows, save_dataset, source_text
from lstm_jax.outputs import write_json
from lstm_pipeline.stage import run_stage


def arguments(parser):
    parser.add_argument("--out", type=Path, required=True, help="folder of the prepared datasets, e.g. data")
    parser.add_argument("--metrics", type=Path, required=True, help="JSON summary, e.g. metrics/prepare.json")


def main(params, args):
    p = params.prepare
    summary = {}
    for name, src in p.texts.items():
        text = source_text(src.text, src.repeat, src.separator, src.path)
        ds = build_windows(text, p.seq_length, p.stride, p.heldout_fraction)
        save_dataset(ds, args.out / name)
        summary[name] = {
            "characters": len(text),
            "vocab_size": len(ds.vocab),
            "train_windows": int(ds.train.shape[0]),
            "heldout_windows": int(ds.heldout.shape[0]),
        }
        print(f"prepare: {name}: {summary[name]}")
    write_json(args.metrics, summary)


if __name__ == "__main__":
    run_stage(main, __doc__, arguments)
