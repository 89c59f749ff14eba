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
from lstm_jax.limits import MAX_GENERATE_LENGTH, MAX_TEMPERATURE, MIN_TEMPERATURE

MAX_LINE_BYTES = 10_000_000  # one `predict` input line (a line is held in memory whole)
PREDICT_ROWS = 64  # lines per model call in `predict`
PREDICT_STEPS = 256  # time steps per model call; the LSTM state carries over between calls
MAX_MESSAGE = 2000  # characters of an error message printed


def fail(exc: BaseException, debug: bool) -> int:
    """Print an input error as one line on stderr and return exit status 2 (re-raise with debug)."""
    if debug:
        raise exc
    message = " ".join(str(exc).splitlines())
    if len(message) > MAX_MESSAGE:
        message = f"{message[:MAX_MESSAGE]}... ({len(message)} characters)"
    print(f"error: {message}", file=sys.stderr)
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
    _check(
        args.temperature == 0 or MIN_TEMPERATURE <= args.temperature <= MAX_TEMPERATURE,
        "--temperature",
        f"0 (greedy) or a number in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}]",
        args.temperature,
    )
    _check(args.top_k >= 0, "--top-k", "an integer >= 0", args.top_k)
    _check(0 <= args.seed < 2**32, "--seed", "an integer in [0, 2**32)", args.seed)
    from lstm_jax.io._checkpoint import load_checkpoint
    from lstm_jax.training._generate import generate_text

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

    from lstm_jax.io._checkpoint import load_checkpoint

    if args.checkpoint is None:  # no checkpoint: this machine, and how runs here are pinned
        from lstm_jax.portability import machine_record

        print(json.dumps({"machine": machine_record()}, indent=2, ensure_ascii=False))
        return
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
        "platform": ckpt.config.get("platform"),  # None for checkpoints older than version 0.4
    }
    print(json.dumps(info, indent=2, ensure_ascii=False))


def _open_input(path: Path):
    """`path` opened in binary if it is a regular file (a FIFO is refused, never waited on)."""
    from lstm_jax.io._safe_paths import open_regular

    return open_regular(path)


def _check_input(path: Path) -> None:
    """A pass over the whole input (a regular UTF-8 file, lines of at most MAX_LINE_BYTES), so a
    bad line fails before any output."""
    with _open_input(path) as f:
        for number, raw in enumerate(f, 1):
            _check(len(raw) <= MAX_LINE_BYTES, f"{path}: line {number}", f"at most {MAX_LINE_BYTES} bytes", len(raw))
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ArgumentError(
                    f"{path}: line {number}: expected UTF-8 text, found byte 0x{raw[exc.start]:02x} at column "
                    f"{exc.start + 1}"
                ) from None


def _input_lines(path: Path):
    """The lines of a UTF-8 file, as `str.splitlines` would give them, read lazily."""
    with _open_input(path) as f:
        for raw in f:
            yield from raw.decode("utf-8").splitlines() or [""]


def _last_step_probs(model, params, vocab, texts: list[str], step):
    """Next-token probabilities float32[len(texts), V] after each text: the texts left-padded
    (padding never touches the state) into PREDICT_ROWS rows and a multiple of PREDICT_STEPS
    columns, run PREDICT_STEPS columns per call with the state carried over, so memory stays
    bounded whatever the lines' lengths and one compiled program serves every call."""
    import numpy as np

    from lstm_jax.training._generate import left_pad

    ids, mask = left_pad([vocab.encode(t) for t in texts])
    width = -(-ids.shape[1] // PREDICT_STEPS) * PREDICT_STEPS
    full_ids = np.zeros((PREDICT_ROWS, width), np.int32)
    full_mask = np.zeros((PREDICT_ROWS, width), bool)
    full_ids[: len(texts), width - ids.shape[1] :] = ids
    full_mask[: len(texts), width - ids.shape[1] :] = mask
    state = model.initial_state(PREDICT_ROWS)
    for start in range(0, width, PREDICT_STEPS):
        cols = slice(start, start + PREDICT_STEPS)
        probs, state = step(params, full_ids[:, cols], full_mask[:, cols], state)
    return np.asarray(probs)[: len(texts)]


def cmd_predict(args) -> None:
    _check(args.top >= 1, "--top", "an integer >= 1", args.top)
    path = Path(args.input)
    _check_input(path)
    import jax
    import numpy as np

    from lstm_jax.io._checkpoint import load_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    _expect_char_lm(ckpt, args.checkpoint, "predict")

    @jax.jit
    def step(params, ids, mask, state):
        logits, state = ckpt.model.apply({"params": params}, ids, state, mask=mask)
        return jax.nn.softmax(logits[:, -1], -1), state

    def flush(group: list[str]) -> None:
        texts = [line for line in group if line]
        rows = iter(_last_step_probs(ckpt.model, ckpt.params, ckpt.vocab, texts, step) if texts else [])
        for line in group:
            if not line:
                print(json.dumps({"input": line, "error": "empty line"}))
                continue
            p = next(rows)
            best = np.argsort(-p, kind="stable")[: args.top]
            top = [{"token": ckpt.vocab.tokens[i], "probability": round(float(p[i]), 6)} for i in best]
            print(json.dumps({"input": line, "next": top}, ensure_ascii=False))

    group = []
    for line in _input_lines(path):
        group.append(line)
        if len(group) == PREDICT_ROWS:
            flush(group)
            group = []
    if group:
        flush(group)


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
    p.add_argument("input", help="UTF-8 text file, one input per line (read in batches of lines)")
    p.add_argument("--top", type=int, default=5, help="how many next characters to list (default: 5)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "info",
        parents=[debug],
        help="print a checkpoint's model, size, vocabulary, training metrics, params and platform",
        description="With a checkpoint: its model, size, vocabulary, training metrics, params and the "
        "platform that produced it. Without: this machine (CPU, cores, ISA) and the pins that make "
        "pipeline runs bitwise portable (LSTM_JAX_PORTABLE).",
    )
    p.add_argument("checkpoint", nargs="?", help="checkpoint folder, e.g. models/char (omit: this machine)")
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
    except BrokenPipeError:  # `lstm-jax info ... | head`: the reader left; not an error of ours
        _silence_stdout()
        return 141
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit raises no second BrokenPipeError."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv=None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
