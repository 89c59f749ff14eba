"""Stage transfer: continue a trained CharLM on `transfer.dataset` with a vocabulary mapped by
character; compare with a from-scratch model on the same budget; measure forgetting on
`transfer.forgetting_dataset`."""

import lstm_pipeline.pinned  # noqa: F401  (first: pins NumPy's and OpenBLAS's kernels before they load)

import time
from dataclasses import asdict
from pathlib import Path

import jax

from lstm_jax.io import digest, load_checkpoint, save_checkpoint, count_steps, load_dataset, remap_ids
from lstm_jax.training import TrainCheckpointer, run_metadata, report, train_model, init_params
from lstm_jax.nn import remap_vocab_params, with_vocab_size
from lstm_pipeline import adapter
from lstm_pipeline.live import epoch_log
from lstm_pipeline.stage import run_stage, write_metrics


def arguments(parser):
    parser.add_argument("--model", type=Path, required=True, help="the trained checkpoint, e.g. models/char")
    parser.add_argument("--data", type=Path, required=True, help="dataset to transfer to, e.g. data/text2")
    parser.add_argument("--forgetting-data", type=Path, required=True, help="dataset whose forgetting is measured")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write, e.g. models/transfer")
    parser.add_argument("--checkpoints", type=Path, required=True, help="resumable checkpoints folder")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument(
        "--live-transfer",
        type=Path,
        required=True,
        help="DVCLive folder for the transfer run's per-epoch metrics, e.g. dvclive/transfer",
    )
    parser.add_argument(
        "--live-scratch",
        type=Path,
        required=True,
        help="DVCLive folder for the from-scratch run's per-epoch metrics, e.g. dvclive/scratch",
    )


def main(params, args):
    cfg = params.transfer
    start = time.perf_counter()
    ckpt = load_checkpoint(args.model)
    trained = adapter.checkpoint_model(ckpt, args.model)
    target = load_dataset(args.data)
    old = load_dataset(args.forgetting_data)
    vocab = ckpt.vocab.union(target.vocab)  # old ids stay put; characters new to the model go last
    train, heldout = (remap_ids(a, target.vocab, vocab) for a in (target.train, target.heldout))
    old_heldout = remap_ids(old.heldout, old.vocab, vocab)

    model = with_vocab_size(trained, len(vocab))
    key = jax.random.key(cfg.seed)
    fresh = init_params(model, jax.random.fold_in(key, 0))
    total_steps = count_steps(train.shape[0], cfg.batch_size, cfg.epochs)
    common = dict(
        tx=adapter.optimizer(cfg.optimizer, total_steps),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        eval_batch_size=cfg.eval_batch_size,
        key=jax.random.fold_in(key, 1),
    )
    start_params = remap_vocab_params(ckpt.params, ckpt.vocab, vocab, fresh)
    optimizer = adapter.optimizer_record(cfg.optimizer, total_steps)

    def run(name: str, params, live: Path):
        """Train `params` as run `name` (its own resumable checkpoints and dvclive folder)."""
        fingerprint = digest(asdict(cfg), train, heldout, *jax.tree.leaves(params))
        checkpointer = TrainCheckpointer(
            args.checkpoints / name,
            every=cfg.checkpoint_every,
            model=model,
            vocab=vocab,
            optimizer=optimizer,
            fingerprint=fingerprint,
        )
        with epoch_log(live) as on_epoch:
            return train_model(
                model, params, train, heldout, desc=name, checkpointer=checkpointer, on_epoch=on_epoch, **common
            )

    moved = run("transfer", start_params, args.live_transfer)
    scratch = run("scratch", fresh, args.live_scratch)

    before = moved.evaluator.metrics(start_params, old_heldout)["accuracy"]
    after = moved.evaluator.metrics(moved.state.params, old_heldout)["accuracy"]
    metrics = {
        "transfer": {f"{cfg.dataset}_{k}": v for k, v in moved.final.items()},
        "scratch": {f"{cfg.dataset}_{k}": v for k, v in scratch.final.items()},
        "forgetting": {
            f"{cfg.forgetting_dataset}_heldout_accuracy_before": before,
            f"{cfg.forgetting_dataset}_heldout_accuracy_after": after,
            f"{cfg.forgetting_dataset}_forgetting": before - after,
        },
        "vocab": {
            "model": len(ckpt.vocab),
            "target": len(target.vocab),
            "merged": len(vocab),
            "new_characters": len(vocab) - len(ckpt.vocab),
        },
    }
    save_checkpoint(
        args.out,
        model=model,
        params=moved.state.params,
        vocab=vocab,
        opt_state=moved.state.opt_state,
        optimizer=optimizer,
        metadata={
            "dataset": cfg.dataset,
            "from": str(args.model),
            "steps": int(moved.state.step),
            "final": moved.final,
            "params": asdict(cfg),
            "run": run_metadata(),
        },
    )
    write_metrics(args.metrics, metrics)
    print(f"transfer: {metrics}")
    print(f"transfer: {report({**moved.timers, **scratch.timers})}, total {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    run_stage(main, __doc__, arguments)
