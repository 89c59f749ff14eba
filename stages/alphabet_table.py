"""Stage alphabet_table: every alphabet framing's metrics -> one JSON table, a readable
Markdown table and a CSV for the bar chart."""

import lstm_pipeline.pinned  # noqa: F401  (first: pins NumPy's and OpenBLAS's kernels before they load)

from pathlib import Path

from lstm_jax.io import write_csv, write_text
from lstm_pipeline.stage import read_json, run_stage, write_metrics

# What the tutorial reported for its framings (its readers could not always reproduce them).
REPORTED = {
    "one_char": "84%",
    "window_features": "86.96%",
    "window_steps": "100%",
    "whole_batch": "100%",
    "stateful": "100%",
    "variable_length": "98%",
}


def arguments(parser):
    parser.add_argument("--results", type=Path, required=True, help="folder of alphabet@<framing> metrics")
    parser.add_argument("--table", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--markdown", type=Path, required=True, help="Markdown table to write")
    parser.add_argument("--plot", type=Path, required=True, help="bar-chart CSV to write")


def main(params, args):
    names = list(params.alphabet.framings)
    results = {name: read_json(args.results / f"{name}.json") for name in names}
    table, rows = {}, []
    lines = [
        f"Alphabet experiments: mean ± std over {params.alphabet.seeds} seeds (regenerate with `dvc repro`).",
        "",
        "| framing | epochs | real: train acc | real: random order | scrambled: train acc "
        "| scrambled: random order | tutorial reported |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        r = results[name]
        table[name] = {
            a: {k: r[a][k]["mean"] for k in ("train_accuracy", "random_order_accuracy")} for a in ("plain", "scrambled")
        }
        for a in ("plain", "scrambled"):
            rows.append(
                {
                    "framing": f"{name} ({a})",
                    "train_accuracy": r[a]["train_accuracy"]["mean"],
                    "random_order_accuracy": r[a]["random_order_accuracy"]["mean"],
                }
            )
        cells = [
            f"{100 * r[a][k]['mean']:.1f} ± {100 * r[a][k]['std']:.1f}%"
            for a in ("plain", "scrambled")
            for k in ("train_accuracy", "random_order_accuracy")
        ]
        lines.append(f"| {name} | {r['epochs']} | " + " | ".join(cells) + f" | {REPORTED.get(name, '-')} |")
        if "recital" in r:
            rec = r["recital"]["plain"]
            cold = ", ".join(rec["cold_prediction"])
            lines.append(f"|  | recited from 'A': `{rec['recited'][0]}`; cold 'K' -> {cold} | | | | | |")
    write_metrics(args.table, table)
    write_csv(args.plot, rows)
    write_text(args.markdown, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    run_stage(main, __doc__, arguments)
