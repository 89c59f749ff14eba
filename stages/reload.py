"""Stage reload: rebuild the model from models/char alone; check held-out predictions are bitwise
identical to the trained model's; write a greedy generation from `reload.seed_text`."""

import numpy as np

from lstm_jax.checkpoint import load_checkpoint
from lstm_jax.cli import run_stage
from lstm_jax.data import load_dataset
from lstm_jax.errors import LstmJaxError
from lstm_jax.generate import generate_text
from lstm_jax.outputs import write_json, write_text
from lstm_jax.train import Evaluator


def main(params):
    cfg = params.reload
    ckpt = load_checkpoint("models/char")
    ds = load_dataset(f"data/{ckpt.config['metadata']['dataset']}")
    if ds.vocab != ckpt.vocab:
        raise LstmJaxError("models/char: the checkpoint's vocabulary differs from its dataset's vocab.json")
    expected = np.load("models/char_heldout_logits.npy")
    # Same batch size as training's evaluation, so the compiled program is the same one.
    found = Evaluator(ckpt.model.apply, params.train.eval_batch_size).predict(ckpt.params, ds.heldout)
    identical = expected.shape == found.shape and expected.tobytes() == found.tobytes()
    max_diff = float(np.max(np.abs(expected - found))) if expected.shape == found.shape else float("inf")
    sample = generate_text(ckpt.model, ckpt.params, ckpt.vocab, cfg.seed_text, cfg.length)
    write_json("metrics/reload.json", {
        "bitwise_identical": bool(identical),
        "max_abs_diff": max_diff,
        "heldout_accuracy": float(np.mean(np.argmax(found, -1) == ds.heldout[:, 1:])),
    })
    write_text("metrics/reload_sample.txt", cfg.seed_text + sample + "\n")
    print(f"reload: bitwise identical predictions: {identical} (max abs diff {max_diff})")
    print(f"reload: sample: {cfg.seed_text + sample!r}")


if __name__ == "__main__":
    run_stage(main, __doc__)
