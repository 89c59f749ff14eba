"""The pipeline's default char-model recipe (params.yaml `train`, `prepare`, `baseline`) against
its Kneser-Ney baseline on real English texts found on a standard machine, none of them tuned on
but the first:

  python_docs  Python's documentation topics (pydoc_data.topics, part of CPython), ~465 KB
  idle_news    idlelib/NEWS.txt, IDLE's change log (part of CPython's standard library), ~55 KB
  gpl3         /usr/share/common-licenses/GPL-3, the GNU GPL v3 (every Debian/Ubuntu system), ~35 KB

Prints one Markdown table row per text: size, KN order, KN bpc, LSTM bpc (best epoch's weights,
held out, scored after `train.heldout_context` windows of context), the improvement, best epoch / epochs run,
training seconds. `--set KEY=VALUE` changes a param as `dvc exp run -S` would. Run:
    python benchmarks/real_texts.py [--texts python_docs idle_news gpl3] [--epochs N]
        [--set train.model.cell=gru ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import idlelib
import jax
import numpy as np
import yaml

from lstm_jax import portability
from lstm_jax.portability import cpu_model
from lstm_jax.io import file_chunks, prepare_dataset, python_docs_text, window_stream, count_steps, load_dataset
from lstm_pipeline.baselines.kneser_ney import KneserNey, bits_per_char, select_order
from lstm_jax.training import train_model, init_params
from lstm_pipeline import adapter
from lstm_pipeline.config.params import load_params

ROOT = Path(__file__).resolve().parents[1]
TEXTS = {
    "python_docs": lambda: iter([python_docs_text()]),
    "idle_news": lambda: file_chunks([Path(idlelib.__file__).parent / "NEWS.txt"]),
    "gpl3": lambda: file_chunks([Path("/usr/share/common-licenses/GPL-3")]),
}


def one_text(name: str, params, epochs: int | None) -> str:
    p, cfg = params.prepare, params.train
    with tempfile.TemporaryDirectory() as tmp:
        meta = prepare_dataset(
            TEXTS[name], Path(tmp), seq_length=p.seq_length, stride=p.seq_length, heldout_fraction=p.heldout_fraction
        )
        ds = load_dataset(tmp)
    train_ids, heldout_ids = window_stream(ds.train, p.seq_length), window_stream(ds.heldout, p.seq_length)
    order = select_order(train_ids, len(ds.vocab), params.baseline.orders, params.baseline.validation_fraction)["order"]
    kn_bpc = bits_per_char(KneserNey(order, len(ds.vocab)).fit(train_ids).log_probs(heldout_ids))
    batch = min(cfg.batch_size, ds.train.shape[0])
    epochs = epochs or cfg.epochs_for(ds.train.shape[0])
    model = adapter.char_lm(cfg.model, len(ds.vocab))
    key = jax.random.key(cfg.seed)
    start = time.perf_counter()
    result = train_model(
        model,
        init_params(model, jax.random.fold_in(key, 0)),
        ds.train,
        ds.heldout,
        tx=adapter.optimizer(cfg.optimizer, count_steps(ds.train.shape[0], batch, epochs)),
        epochs=epochs,
        batch_size=batch,
        eval_batch_size=cfg.eval_batch_size,
        key=jax.random.fold_in(key, 1),
        desc=name,
        patience=cfg.patience,
        keep_best=True,
        heldout_context=cfg.heldout_context,
    )
    seconds = time.perf_counter() - start
    lstm_bpc = result.final["heldout_bpc"]
    verdict = f"{100 * (1 - lstm_bpc / kn_bpc):+.1f}%"
    return (
        f"| {name} | {meta['characters'] / 1000:.0f} K | {order} | {kn_bpc:.3f} | {lstm_bpc:.3f} | {verdict} | "
        f"{result.best_epoch} / {len(result.history)} | {seconds:.0f} s |"
    )


def with_overrides(path: Path, overrides: list[str]) -> Path:
    """params.yaml with each dotted KEY=VALUE (VALUE parsed as YAML) set, as a temporary file."""
    if not overrides:
        return path
    tree = yaml.safe_load(path.read_text("utf-8"))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set: expected KEY=VALUE, found {item!r}")
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    out = Path(tempfile.mkdtemp()) / "params.yaml"
    out.write_text(yaml.safe_dump(tree), "utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", nargs="+", choices=sorted(TEXTS), default=list(TEXTS))
    parser.add_argument("--epochs", type=int, help="override train.epochs (early stopping still applies)")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. train.model.cell=gru")
    args = parser.parse_args()
    # The pipeline's stages run under the portability pins (AVX2 cap, Eigen products, 2 threads):
    # without them XLA picks other kernels, and the python_docs row would differ from the
    # `train` stage's in the last digits.
    pinned = portability.pin_for_portability()
    params = load_params(with_overrides(args.params, args.set))
    print(
        f"# {cpu_model()}, {os.cpu_count()} cores, jax {jax.__version__}, numpy {np.__version__}, "
        f"portability pins {'on' if pinned else 'off'}"
    )
    print(f"# recipe: params.yaml train.model {params.train.model}, optimizer {params.train.optimizer}")
    print(
        f"# held-out windows scored after {params.train.heldout_context} window(s) of context; "
        f"overrides: {args.set or 'none'}"
    )
    print("| text | size | KN order | KN bpc | LSTM bpc | LSTM vs KN | best epoch / run | training |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.texts:
        if name == "gpl3" and not Path("/usr/share/common-licenses/GPL-3").is_file():
            print(f"| {name} | not on this machine |", file=sys.stderr)
            continue
        print(one_text(name, params, args.epochs), flush=True)


if __name__ == "__main__":
    main()
