"""`lstm-jax` command line, and the error policy shared with the stage scripts.

Errors caused by input (`LstmJaxError`) print as one line on stderr and exit with status 2;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lstm_jax.errors import LstmJaxError


def _fail(exc: BaseException, debug: bool) -> int:
    if debug:
        raise exc
    print(f"error: {exc}", file=sys.stderr)
    return 2


def run_stage(main, description: str) -> None:
    """Entry point of a stage script: parse `--params`/`--debug`, validate params.yaml, call
    `main(params)`, and turn input errors into one line and exit status 2."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    args = parser.parse_args()
    from lstm_jax import runtime

    runtime.enable_compilation_cache()  # .jax_cache/: a rerun loads instead of compiling
    try:
        from lstm_jax.config import load_params

        main(load_params(args.params))
    except LstmJaxError as exc:
        sys.exit(_fail(exc, args.debug))


def cmd_check_params(args) -> None:
    from lstm_jax.config import load_params

    load_params(args.params)
    print(f"{args.params}: ok")


def cmd_generate(args) -> None:
    from lstm_jax.checkpoint import load_checkpoint
    from lstm_jax.generate import generate_text

    ckpt = load_checkpoint(args.checkpoint)
    if args.temperature < 0 or args.top_k < 0 or args.length < 1 or not args.seed:
        raise LstmJaxError("expected --temperature >= 0, --top-k >= 0, --length >= 1 and a non-empty --seed")
    text = generate_text(ckpt.model, ckpt.params, ckpt.vocab, args.seed, args.length,
                         temperature=args.temperature, top_k=args.top_k, rng_seed=args.seed_rng)
    print(args.seed + text)


def cmd_info(args) -> None:
    import jax

    from lstm_jax.checkpoint import load_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    n_params = sum(x.size for x in jax.tree.leaves(ckpt.params))
    meta = dict(ckpt.config.get("metadata") or {})
    info = {"checkpoint": str(Path(args.checkpoint)), "model": ckpt.config["model"], "parameters": int(n_params),
            "vocab": list(ckpt.vocab.tokens), "training_metrics": meta.pop("final", None),
            "params": meta.pop("params", None), "optimizer": ckpt.config.get("optimizer"), "metadata": meta}
    print(json.dumps(info, indent=2, ensure_ascii=False))


def cmd_predict(args) -> None:
    import jax
    import numpy as np

    from lstm_jax.checkpoint import load_checkpoint
    from lstm_jax.generate import left_pad

    ckpt = load_checkpoint(args.checkpoint)
    if ckpt.config["model"]["name"] != "CharLM":
        raise LstmJaxError(f"{args.checkpoint}: predict expects a CharLM checkpoint, found "
                           f"{ckpt.config['model']['name']}")
    path = Path(args.input)
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LstmJaxError(f"{path}: cannot read the input as UTF-8 text ({exc})") from None
    if args.top < 1:
        raise LstmJaxError(f"--top: expected an integer >= 1, found {args.top}")
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
        print(json.dumps({"input": line, "next": [{"token": ckpt.vocab.tokens[i], "probability": round(float(p[i]), 6)}
                                                  for i in best]}, ensure_ascii=False))


def cmd_check_metrics(args) -> int:
    from lstm_jax.gate import format_table, load_thresholds, run_checks

    checks = run_checks(load_thresholds(args.thresholds), Path("."), args.baseline)
    print(format_table(checks))
    failed = [c for c in checks if not c.ok]
    print(f"gate: {len(checks) - len(failed)} metrics within their bands, {len(failed)} outside")
    return 1 if failed else 0


def cmd_report(args) -> None:
    from lstm_jax.report import build_report

    build_report(args.out, ".", args.dvc_plots)
    print(f"wrote {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstm-jax", description="Train, inspect and sample JAX/Flax LSTMs.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-params", help="validate params.yaml and exit")
    p.add_argument("params", nargs="?", default="params.yaml", help="params file (default: params.yaml)")
    p.set_defaults(func=cmd_check_params)

    p = sub.add_parser("check-metrics", help="check metrics against the bands in thresholds.yaml (CI gate)",
                       description="Print every metric named in the thresholds file with its value, band, baseline "
                                   "and verdict; exit 1 if any is missing, outside its band, or (with --baseline) "
                                   "further from the committed value than its tolerance.")
    p.add_argument("--thresholds", default="thresholds.yaml", help="bands and tolerances (default: thresholds.yaml)")
    p.add_argument("--baseline", metavar="REV", help="git revision whose committed metrics are the baseline, e.g. HEAD")
    p.set_defaults(func=cmd_check_metrics)

    p = sub.add_parser("generate", help="print text sampled from a CharLM checkpoint")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder, e.g. models/char")
    p.add_argument("--seed", default="the ", help="text that warms up the state (default: 'the ')")
    p.add_argument("--length", type=int, default=200, help="characters to generate (default: 200)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); >0 samples")
    p.add_argument("--top-k", type=int, default=0, help="sample only among the k most likely (0 = all)")
    p.add_argument("--seed-rng", type=int, default=0, help="PRNG seed for sampling (default: 0)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("predict", help="next-character probabilities after each line of a file",
                       description="For every line of --input, print one JSON object with the --top most likely "
                                   "next characters and their probabilities under a CharLM checkpoint.")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder, e.g. models/char")
    p.add_argument("--input", required=True, help="UTF-8 text file, one input per line")
    p.add_argument("--top", type=int, default=5, help="how many next characters to list (default: 5)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("report", help="write an HTML report of the pipeline's figures, tables and metrics")
    p.add_argument("--out", default="report.html", help="HTML file to write (default: report.html)")
    p.add_argument("--dvc-plots", help="the index.html written by `dvc plots show -o DIR`, to link from the report")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("info", help="print a checkpoint's model, size, vocabulary, training metrics and params")
    p.add_argument("checkpoint", help="checkpoint folder, e.g. models/char")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except LstmJaxError as exc:
        return _fail(exc, args.debug)


if __name__ == "__main__":
    sys.exit(main())
