"""Stage prepare: every text in `prepare.texts` -> data/<name>/{train,heldout}.npy + vocab.json."""

from lstm_jax.cli import run_stage
from lstm_jax.data import build_windows, save_dataset, source_text
from lstm_jax.outputs import write_json


def main(params):
    p = params.prepare
    summary = {}
    for name, src in p.texts.items():
        text = source_text(src.text, src.repeat, src.separator, src.path)
        ds = build_windows(text, p.seq_length, p.stride, p.heldout_fraction)
        save_dataset(ds, f"data/{name}")
        summary[name] = {"characters": len(text), "vocab_size": len(ds.vocab),
                         "train_windows": int(ds.train.shape[0]), "heldout_windows": int(ds.heldout.shape[0])}
        print(f"prepare: {name}: {summary[name]}")
    write_json("metrics/prepare.json", summary)


if __name__ == "__main__":
    run_stage(main, __doc__)
