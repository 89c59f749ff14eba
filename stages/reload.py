"""Stage reload: rebuild the model from its checkpoint alone; check held-out predictions are
bitwise identical to the trained model's; write a greedy generation from `reload.seed_text`."""

import lstm_pipeline.pinned  # noqa: F401  (first: pins NumPy's and OpenBLAS's kernels before they load)

from pathlib import Path

import numpy as np

from lstm_jax.io import load_checkpoint, load_dataset, write_text
from lstm_jax.errors import CheckpointError
from lstm_jax.training import generate_text, Evaluator
from lstm_pipeline import adapter
from lstm_pipeline.stage import run_stage, write_metrics


def arguments(parser):
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder, e.g. models/char")
    parser.add_argument("--logits", type=Path, required=True, help="the trained model's held-out logits (.npy)")
    parser.add_argument("--data", type=Path, required=True, help="the dataset it was trained on, e.g. data/text1")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--sample", type=Path, required=True, help="text file for the greedy generation")


def main(params, args):
    cfg = params.reload
    ckpt = load_checkpoint(args.model)
    model = adapter.checkpoint_model(ckpt, args.model)
    ds = load_dataset(args.data)
    if ds.vocab != ckpt.vocab:
        raise CheckpointError(f"{args.model}: the checkpoint's vocabulary differs from {args.data / 'vocab.json'}")
    expected = np.load(args.logits)
    # Same batch size as training's evaluation, so the compiled program is the same one.
    found = Evaluator(model.apply, params.train.eval_batch_size).predict(ckpt.params, ds.heldout)
    identical = expected.shape == found.shape and expected.tobytes() == found.tobytes()
    max_diff = float(np.max(np.abs(expected - found))) if expected.shape == found.shape else float("inf")
    sample = generate_text(model, ckpt.params, ckpt.vocab, cfg.seed_text, cfg.length)
    write_metrics(
        args.metrics,
        {
            "bitwise_identical": bool(identical),
            "max_abs_diff": max_diff,
            "heldout_accuracy": float(np.mean(np.argmax(found, -1) == ds.heldout[:, 1:])),
        },
    )
    write_text(args.sample, cfg.seed_text + sample + "\n")
    print(f"reload: bitwise identical predictions: {identical} (max abs diff {max_diff})")
    print(f"reload: sample: {cfg.seed_text + sample!r}")


if __name__ == "__main__":
    run_stage(main, __doc__, arguments)
