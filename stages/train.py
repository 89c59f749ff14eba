"""Stage train: a CharLM on `train.dataset` -> models/char checkpoint, metrics, loss plot."""

import time
from dataclasses import asdict

import jax

from lstm_jax.checkpoint import TrainCheckpointer, digest, save_checkpoint
from lstm_jax.cli import run_stage
from lstm_jax.data import count_steps, load_dataset
from lstm_jax.models import char_lm_from_config
from lstm_jax.outputs import write_csv, write_json, write_npy
from lstm_jax.parallel import run_metadata
from lstm_jax.timing import report
from lstm_jax.train import init_params, optimizer_record, train_model


def main(params):
    cfg = params.train
    start = time.perf_counter()
    ds = load_dataset(f"data/{cfg.dataset}")
    model = char_lm_from_config(cfg.model, len(ds.vocab))
    key = jax.random.key(cfg.seed)
    optimizer = optimizer_record(cfg.optimizer, count_steps(ds.train.shape[0], cfg.batch_size, cfg.epochs))
    checkpointer = TrainCheckpointer("checkpoints/train", every=cfg.checkpoint_every, model=model, vocab=ds.vocab,
                                     optimizer=optimizer, fingerprint=digest(asdict(cfg), ds.train, ds.heldout))
    state, history, final, evaluator, timers = train_model(
        model, init_params(model, jax.random.fold_in(key, 0)), ds.train, ds.heldout, optimizer=cfg.optimizer,
        epochs=cfg.epochs, batch_size=cfg.batch_size, eval_batch_size=cfg.eval_batch_size,
        key=jax.random.fold_in(key, 1), desc="train", checkpointer=checkpointer)
    heldout_logits = evaluator.predict(state.params, ds.heldout)

    total_steps = int(state.step)
    save_checkpoint("models/char", model=model, params=state.params, vocab=ds.vocab, opt_state=state.opt_state,
                    optimizer=optimizer,
                    metadata={"dataset": cfg.dataset, "steps": total_steps, "final": final, "params": asdict(cfg),
                              "run": run_metadata()})
    write_npy("models/char_heldout_logits.npy", heldout_logits)
    epochs = {str(r["epoch"]): {k: v for k, v in r.items() if k != "epoch"} for r in history}
    write_json("metrics/train.json", {"final": final, "steps": total_steps, "epochs": epochs})
    write_csv("plots/train_loss.csv", history)
    print(f"train: {final}")
    print(f"train: {report({**timers, 'predict': evaluator.predict_fn})}, total {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    run_stage(main, __doc__)
