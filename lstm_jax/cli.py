"""`lstm-jax` command line: sample from, predict with and inspect a saved model.

Errors caused by input (`LstmJaxError`) print as one line on stderr and exit with status 2;
`--debug` (before or after the subcommand) shows the traceback instead. Every argument's range
is checked before a checkpoint is loaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from lstm_jax.errors import ArgumentError, LstmJaxError

MAX_GENERATE_LENGTH = 1_000_000  # characters; one compiled scan holds all of them in memory
MAX_PREDICT_BYTES = 10_000_000  # input file size for `predict` (one batched call)


def fail(exc: BaseException, debug: bool) -> int:
    """Print an input error as one line on stderr and return exit status 2 (re-raise with debug)."""
    if debug:
        raise exc
    print(f"error: {exc}", file=sys.stderr)
    return 2


def _check(ok: bool, option: str, expected: str, found) -> None:
    if not ok:
        raise ArgumentError(f"{option}: expected {expected}, found {found!r}")


def cmd_generate(args) -> None:
    _check(bool(args.prompt), "--prompt", "a non-empty text", args.prompt)
    _check(
        1 <= args.length <= MAX_GENERATE_LENGTH, "--length", f"an integer in [1, {MAX_GENERATE_LENGTH}]", args.length
    )
    _check(
        math.isfinite(args.temperature) and args.temperature >= 0, "--temperature", "a number >= 0", args.temperature
    )
    _check(args.top_k >= 0, "--top-k", "an integer >= 0", args.top_k)
    _check(0 <= args.seed < 2**32, "--seed", "an integer in [0, 2**32)", args.seed)
    from lstm_jax.checkpoint import load_checkpoint
    from lstm_jax.generate import generate_text

    ckpt = load_checkpoint(args.checkpoint)
    _expect_char_lm(ckpt, args.checkpoint, "generate")
    text = generate_text(
        ckpt.model,
        ckpt.params,
        ckpt.vocab,
        args.prompt,
        args.length,
        temperature=args.temperature,
        top_k=args.top_k,
        rng_seed=args.seed,
    )
    print(args.prompt + text)


def _expect_char_lm(ckpt, path, command: str) -> None:
    name = ckpt.config["model"]["name"]
    if name != "CharLM":
        raise ArgumentError(f"{path}: {command} expects a CharLM checkpoint, found {name}")


def cmd_info(args) -> None:
    import jax

    from lstm_jax.checkpoint import load_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    n_params = sum(x.size for x in jax.tree.leaves(ckpt.params))
    meta = dict(ckpt.config.get("metadata") or {})
    info = {
        "checkpoint": str(Path(args.checkpoint)),
        "model": ckpt.config["model"],
        "parameters": int(n_params),
        "vocab": list(ckpt.vocab.tokens),
        "training_metrics": meta.pop("final", None),
        "params": meta.pop("params", None),
        "optimizer": ckpt.config.get("optimizer"),
        "metadata": meta,
    }
    print(json.dumps(info, indent=2, ensure_ascii=False))


def cmd_predict(args) -> None:
    _check(args.top >= 1, "--top", "an integer >= 1", args.top)
    path = Path(args.input)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ArgumentError(f"{path}: cannot read the input ({exc.strerror})") from None
    _check(size <= MAX_PREDICT_BYTES, str(path), f"at most {MAX_PREDICT_BYTES} bytes of input", size)
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ArgumentError(f"{path}: cannot read the input as UTF-8 text ({exc})") from None
    import jax
    import numpy as np

    from lstm_jax.checkpoint import load_checkpoint
    from lstm_jax.generate import left_pad

    ckpt = load_checkpoint(args.checkpoint)
    _expect_char_lm(ckpt, args.checkpoint, "predict")
    # All lines in one call: left-padded and masked (padding never touches the state), so the
    # last column is every line's last real character and one compiled program serves them all.
    texts = [line for line in lines if line]
    probs = np.zeros((0, len(ckpt.vocab)))
    if texts:
        ids, mask = left_pad([ckpt.vocab.encode(t) for t in texts])
        logits, _ = jax.jit(ckpt.model.apply)({"params": ckpt.params}, ids, mask=mask)
        probs = np.asarray(jax.nn.softmax(logits[:, -1], -1))
    rows = iter(probs)
    for line in lines:
        if not line:
            print(json.dumps({"input": line, "error": "empty line"}))
            continue
        p = next(rows)
        best = np.argsort(-p, kind="stable")[: args.top]
        print(
            json.dumps(
                {
                    "input": line,
                    "next": [{"token": ckpt.vocab.tokens[i], "probability": round(float(p[i]), 6)} for i in best],
                },
                ensure_ascii=False,
            )
        )


def debug_flag() -> argparse.ArgumentParser:
    """A parent parser with `--debug`, for the main parser and every subcommand: SUPPRESS keeps
    a subcommand from resetting a `--debug` given before it."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for input errors"
    )
    return parent


def version() -> str:
    from lstm_jax import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    debug = debug_flag()
    parser = argparse.ArgumentParser(
        prog="lstm-jax", parents=[debug], description="Sample from, predict with and inspect saved lstm_jax models."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "generate",
        parents=[debug],
        help="print text sampled from a CharLM checkpoint",
        description="Warm the LSTM state up on --prompt, then sample --length characters "
        "(greedy with --temperature 0).",
    )
    p.add_argument("checkpoint", help="checkpoint folder, e.g. models/char")
    p.add_argument("--prompt", default="the ", help="text that warms up the state (default: 'the ')")
    p.add_argument(
        "--length", type=int, default=200, help=f"characters to generate, 1..{MAX_GENERATE_LENGTH} (default: 200)"
    )
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); >0 samples")
    p.add_argument("--top-k", type=int, default=0, help="sample only among the k most likely (0 = all)")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling (default: 0)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "predict",
        parents=[debug],
        help="next-character probabilities after each line of a file",
        description="For every line of INPUT, print one JSON object with the --top most likely "
        "next characters and their probabilities under a CharLM checkpoint.",
    )
    p.add_argument("checkpoint", help="checkpoint folder, e.g. models/char")
    p.add_argument("input", help=f"UTF-8 text file, one input per line (at most {MAX_PREDICT_BYTES} bytes)")
    p.add_argument("--top", type=int, default=5, help="how many next characters to list (default: 5)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "info", parents=[debug], help="print a checkpoint's model, size, vocabulary, training metrics and params"
    )
    p.add_argument("checkpoint", help="checkpoint folder, e.g. models/char")
    p.set_defaults(func=cmd_info)
    return parser


def run(parser: argparse.ArgumentParser, argv=None) -> int:
    """Parse `argv`, call the subcommand, and turn input errors into one line and status 2."""
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return args.func(args) or 0
    except LstmJaxError as exc:
        return fail(exc, debug)


def main(argv=None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
