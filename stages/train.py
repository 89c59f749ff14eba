"""Stages train and tutorial: a CharLM on one prepared dataset (params section `--section`) ->
the best epoch's checkpoint, its held-out logits, metrics (loss, bits per character, perplexity,
accuracy; the best epoch), per-epoch metrics through DVCLive."""

import lstm_pipeline.pinned  # noqa: F401  (first: pins NumPy's and OpenBLAS's kernels before they load)

import time
from dataclasses import asdict
from pathlib import Path

import jax

from lstm_jax.io import digest, save_checkpoint, count_steps, load_dataset, write_npy
from lstm_jax.training import TrainCheckpointer, run_metadata, report, train_model, init_params
from lstm_pipeline import adapter
from lstm_pipeline.live import epoch_log
from lstm_pipeline.stage import run_stage, write_metrics


def arguments(parser):
    parser.add_argument("--section", choices=("train", "tutorial"), default="train", help="params.yaml section")
    parser.add_argument("--data", type=Path, required=True, help="prepared dataset folder, e.g. data/text1")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder to write, e.g. models/char")
    parser.add_argument("--logits", type=Path, help="held-out logits .npy to write, for the reload check")
    parser.add_argument("--checkpoints", type=Path, required=True, help="resumable checkpoints folder")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--live", type=Path, required=True, help="DVCLive folder to write, e.g. dvclive/train")


def main(params, args):
    cfg = getattr(params, args.section)
    start = time.perf_counter()
    ds = load_dataset(args.data)
    model = adapter.char_lm(cfg.model, len(ds.vocab), args.section)
    key = jax.random.key(cfg.seed)
    n_epochs = cfg.epochs_for(ds.train.shape[0])
    total_steps = count_steps(ds.train.shape[0], cfg.batch_size, n_epochs)
    optimizer = adapter.optimizer_record(cfg.optimizer, total_steps)
    checkpointer = TrainCheckpointer(
        args.checkpoints,
        every=cfg.checkpoint_every,
        model=model,
        vocab=ds.vocab,
        optimizer=optimizer,
        fingerprint=digest(asdict(cfg), ds.train, ds.heldout),
    )
    with epoch_log(args.live) as on_epoch:
        result = train_model(
            model,
            init_params(model, jax.random.fold_in(key, 0)),
            ds.train,
            ds.heldout,
            tx=adapter.optimizer(cfg.optimizer, total_steps),
            epochs=n_epochs,
            batch_size=cfg.batch_size,
            eval_batch_size=cfg.eval_batch_size,
            key=jax.random.fold_in(key, 1),
            desc=args.section,
            checkpointer=checkpointer,
            on_epoch=on_epoch,
            patience=cfg.patience,
            keep_best=True,
            heldout_context=cfg.heldout_context,
        )
    state = result.state
    heldout_logits = None if args.logits is None else result.evaluator.predict(state.params, ds.heldout)

    total_steps = int(state.step)
    save_checkpoint(
        args.model,
        model=model,
        params=state.params,
        vocab=ds.vocab,
        opt_state=state.opt_state,
        optimizer=optimizer,
        metadata={
            "dataset": cfg.dataset,
            "steps": total_steps,
            "best_epoch": result.best_epoch,
            "final": result.final,
            "params": asdict(cfg),
            "run": run_metadata(),
        },
    )
    if args.logits is not None:
        write_npy(args.logits, heldout_logits)
    epochs = {str(r["epoch"]): {k: v for k, v in r.items() if k != "epoch"} for r in result.history}
    summary = {
        "final": result.final,
        "best_epoch": result.best_epoch,
        "heldout_context": cfg.heldout_context,
        "epochs_run": len(result.history),
        "stopped_early": len(result.history) < n_epochs,
        "steps": total_steps,
        "epochs": epochs,
    }
    write_metrics(args.metrics, summary)
    print(f"{args.section}: best epoch {result.best_epoch} of {len(result.history)}: {result.final}")
    print(
        f"{args.section}: {report({**result.timers, 'predict': result.evaluator.predict_fn})}, "
        f"total {time.perf_counter() - start:.1f}s"
    )


if __name__ == "__main__":
    run_stage(main, __doc__, arguments)
