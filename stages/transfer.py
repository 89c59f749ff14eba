"""Stage transfer: continue models/char on `transfer.dataset` with a vocabulary mapped by
character; compare with a from-scratch model on the same budget; measure forgetting on
`transfer.forgetting_dataset`."""

import time
from dataclasses import asdict

import jax

from lstm_jax.checkpoint import TrainCheckpointer, digest, load_checkpoint, save_checkpoint
from lstm_jax.cli import run_stage
from lstm_jax.data import count_steps, load_dataset
from lstm_jax.models import remap_vocab_params, with_vocab_size
from lstm_jax.outputs import write_csv, write_json
from lstm_jax.parallel import run_metadata
from lstm_jax.timing import report
from lstm_jax.train import init_params, optimizer_record, train_model
from lstm_jax.vocab import remap_ids


def main(params):
    cfg = params.transfer
    start = time.perf_counter()
    ckpt = load_checkpoint("models/char")
    target = load_dataset(f"data/{cfg.dataset}")
    old = load_dataset(f"data/{cfg.forgetting_dataset}")
    vocab = ckpt.vocab.union(target.vocab)  # old ids stay put; characters new to the model go last
    train, heldout = (remap_ids(a, target.vocab, vocab) for a in (target.train, target.heldout))
    old_heldout = remap_ids(old.heldout, old.vocab, vocab)

    model = with_vocab_size(ckpt.model, len(vocab))
    key = jax.random.key(cfg.seed)
    fresh = init_params(model, jax.random.fold_in(key, 0))
    common = dict(optimizer=cfg.optimizer, epochs=cfg.epochs, batch_size=cfg.batch_size,
                  eval_batch_size=cfg.eval_batch_size, key=jax.random.fold_in(key, 1))
    start_params = remap_vocab_params(ckpt.params, ckpt.vocab, vocab, fresh)
    optimizer = optimizer_record(cfg.optimizer, count_steps(train.shape[0], cfg.batch_size, cfg.epochs))

    def checkpointer(name, params):
        run = digest(asdict(cfg), train, heldout, *jax.tree.leaves(params))
        return TrainCheckpointer(f"checkpoints/transfer/{name}", every=cfg.checkpoint_every, model=model,
                                 vocab=vocab, optimizer=optimizer, fingerprint=run)

    t_state, t_hist, t_final, t_eval, t_timers = train_model(
        model, start_params, train, heldout, desc="transfer", checkpointer=checkpointer("transfer", start_params),
        **common)
    s_state, s_hist, s_final, _, s_timers = train_model(
        model, fresh, train, heldout, desc="scratch", checkpointer=checkpointer("scratch", fresh), **common)

    before = t_eval.metrics(start_params, old_heldout)["accuracy"]
    after = t_eval.metrics(t_state.params, old_heldout)["accuracy"]
    metrics = {
        "transfer": {f"{cfg.dataset}_{k}": v for k, v in t_final.items()},
        "scratch": {f"{cfg.dataset}_{k}": v for k, v in s_final.items()},
        "forgetting": {f"{cfg.forgetting_dataset}_heldout_accuracy_before": before,
                       f"{cfg.forgetting_dataset}_heldout_accuracy_after": after,
                       f"{cfg.forgetting_dataset}_forgetting": before - after},
        "vocab": {"model": len(ckpt.vocab), "target": len(target.vocab), "merged": len(vocab),
                  "new_characters": len(vocab) - len(ckpt.vocab)},
    }
    save_checkpoint("models/transfer", model=model, params=t_state.params, vocab=vocab, opt_state=t_state.opt_state,
                    optimizer=optimizer,
                    metadata={"dataset": cfg.dataset, "from": "models/char", "steps": int(t_state.step),
                              "final": t_final, "params": asdict(cfg), "run": run_metadata()})
    write_json("metrics/transfer.json", metrics)
    write_csv("plots/transfer_loss.csv", [
        {"epoch": t["epoch"], "transfer_heldout_loss": t["heldout_loss"], "scratch_heldout_loss": s["heldout_loss"],
         "transfer_train_loss": t["train_loss"], "scratch_train_loss": s["train_loss"]}
        for t, s in zip(t_hist, s_hist)])
    print(f"transfer: {metrics}")
    print(f"transfer: {report({**t_timers, **s_timers})}, total {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    run_stage(main, __doc__)
