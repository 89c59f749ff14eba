"""`lstm-pipeline` command line: check params.yaml, gate the metrics (CI), write the report.

Errors caused by input print as one line on stderr and exit with status 2 (`--debug`, before or
after the subcommand, shows the traceback instead); a metric outside its band exits with 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from lstm_jax.cli import debug_flag, run, version


def cmd_check_params(args) -> None:
    from lstm_pipeline.config.params import load_params

    load_params(args.params)
    print(f"{args.params}: ok")


def cmd_check_metrics(args) -> int:
    from lstm_pipeline.gate import format_table, load_thresholds, run_checks

    checks = run_checks(load_thresholds(args.thresholds), Path("."), args.baseline)
    print(format_table(checks))
    failed = [c for c in checks if not c.ok]
    print(f"gate: {len(checks) - len(failed)} metrics within their bands, {len(failed)} outside")
    return 1 if failed else 0


def cmd_check_reproduced(args) -> int:
    from lstm_pipeline.reproduced import LOCK, changed_outputs, run_was_pinned

    root = Path(".")
    if not run_was_pinned(root):
        print("reproduced: skipped; this run was not pinned (see `lstm-jax info`), so only the tolerances apply")
        return 0
    changed = changed_outputs(root, args.baseline)
    for line in changed:
        print(f"reproduced: differs from {args.baseline}: {line}")
    print(
        f"reproduced: {len(changed)} outputs differ from the committed {LOCK}"
        if changed
        else f"reproduced: every output bit for bit as committed in {args.baseline}:{LOCK}"
    )
    return 1 if changed else 0


def cmd_results(args) -> None:
    from lstm_pipeline.results import results_table

    print(results_table(Path(".")))


def cmd_report(args) -> None:
    from lstm_pipeline.report import build_report

    build_report(args.out, ".", args.dvc_plots)
    print(f"wrote {args.out}")


def cmd_classify(args) -> None:
    from lstm_pipeline.serve import classify_file

    predicted, labels = classify_file(args.model, args.file)
    for i, (p, label) in enumerate(zip(predicted, labels)):
        print(f"{i}\t{p}\t{label}")
    print(f"accuracy against the file's labels: {np.mean([p == t for p, t in zip(predicted, labels)]):.4f}")


def cmd_forecast(args) -> None:
    from lstm_pipeline.serve import forecast_file

    last, forecast = forecast_file(args.model, args.file, args.time_column, args.builtin)
    for step, value in enumerate(forecast, start=1):
        print(f"{last}+{step}\t{value:.6g}")


def build_parser() -> argparse.ArgumentParser:
    debug = debug_flag()
    parser = argparse.ArgumentParser(
        prog="lstm-pipeline",
        parents=[debug],
        description="Check params, gate metrics and report on the lstm-jax pipeline.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-params", parents=[debug], help="validate params.yaml and exit")
    p.add_argument("params", nargs="?", default="params.yaml", help="params file (default: params.yaml)")
    p.set_defaults(func=cmd_check_params)

    p = sub.add_parser(
        "check-metrics",
        parents=[debug],
        help="check metrics against the bands in thresholds.yaml (CI gate)",
        description="Print every metric named in the thresholds file with its value, band, baseline "
        "and verdict; exit 1 if any is missing, outside its band, or (with --baseline) "
        "further from the committed value than its tolerance.",
    )
    p.add_argument("--thresholds", default="thresholds.yaml", help="bands and tolerances (default: thresholds.yaml)")
    p.add_argument("--baseline", metavar="REV", help="git revision whose committed metrics are the baseline, e.g. HEAD")
    p.set_defaults(func=cmd_check_metrics)

    p = sub.add_parser(
        "check-reproduced",
        parents=[debug],
        help="check that a forced rerun reproduced every committed output bit for bit (CI)",
        description="Compare the output hashes in dvc.lock with those committed at --baseline and "
        "list every output that differs (exit 1). Skipped (exit 0) when the run was not under the "
        "portability pins (a GPU, an ARM CPU, LSTM_JAX_PORTABLE=0): there only tolerances apply.",
    )
    p.add_argument("--baseline", metavar="REV", default="HEAD", help="git revision to compare with (default: HEAD)")
    p.set_defaults(func=cmd_check_reproduced)

    p = sub.add_parser(
        "classify",
        parents=[debug],
        help="classify every case of a .ts or long-format .csv file with a classify-stage model",
        description="Print case index, predicted class and the file's own label per line, then the accuracy.",
    )
    p.add_argument("model", type=Path, help="checkpoint folder, e.g. models/classify/JapaneseVowels")
    p.add_argument("file", type=Path, help=".ts file or CSV with header case,label,<feature>...")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser(
        "forecast",
        parents=[debug],
        help="forecast the next H steps after a series' end with a forecast-stage model",
        description="Print the H values forecast after the last step of a CSV (or a built-in series).",
    )
    p.add_argument("model", type=Path, help="checkpoint folder, e.g. models/forecast/co2")
    p.add_argument("file", type=Path, nargs="?", help="CSV with a time column and the model's columns")
    p.add_argument("--time-column", help="the CSV's time column")
    p.add_argument("--builtin", help="a built-in series instead of a file: co2, sunspots, macrodata")
    p.set_defaults(func=cmd_forecast)

    p = sub.add_parser(
        "results",
        parents=[debug],
        help="print the README's results table (each task's LSTM beside its strongest baseline)",
        description="Made from the metrics under metrics/ (run `dvc repro` first).",
    )
    p.set_defaults(func=cmd_results)

    p = sub.add_parser(
        "report", parents=[debug], help="write an HTML report of the pipeline's figures, tables and metrics"
    )
    p.add_argument("--out", default="report.html", help="HTML file to write (default: report.html)")
    p.add_argument("--dvc-plots", help="the index.html written by `dvc plots show -o DIR`, to link from the report")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv=None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
