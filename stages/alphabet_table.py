"""Stage alphabet_table: every alphabet framing's metrics -> metrics/alphabet_table.json,
metrics/alphabet_table.md (a readable table) and plots/alphabet_table.csv (bar chart)."""

from lstm_jax.cli import run_stage
from lstm_jax.outputs import read_json, write_csv, write_json, write_text

# What the tutorial reported for its framings (its readers could not always reproduce them).
REPORTED = {"one_char": "84%", "window_features": "86.96%", "window_steps": "100%", "whole_batch": "100%",
            "stateful": "100%", "variable_length": "98%"}


def main(params):
    names = list(params.alphabet.framings)
    results = {name: read_json(f"metrics/alphabet/{name}.json") for name in names}
    table, rows = {}, []
    lines = [f"Alphabet experiments: mean ± std over {params.alphabet.seeds} seeds (regenerate with `dvc repro`).",
             "", "| framing | epochs | real: train acc | real: random order | scrambled: train acc "
             "| scrambled: random order | tutorial reported |", "|---|---|---|---|---|---|---|"]
    for name in names:
        r = results[name]
        table[name] = {a: {k: r[a][k]["mean"] for k in ("train_accuracy", "random_order_accuracy")}
                       for a in ("plain", "scrambled")}
        for a in ("plain", "scrambled"):
            rows.append({"framing": f"{name} ({a})", "train_accuracy": r[a]["train_accuracy"]["mean"],
                         "random_order_accuracy": r[a]["random_order_accuracy"]["mean"]})
        cells = [f"{100 * r[a][k]['mean']:.1f} ± {100 * r[a][k]['std']:.1f}%"
                 for a in ("plain", "scrambled") for k in ("train_accuracy", "random_order_accuracy")]
        lines.append(f"| {name} | {r['epochs']} | " + " | ".join(cells) + f" | {REPORTED.get(name, '-')} |")
        if "recital" in r:
            rec = r["recital"]["plain"]
            lines.append(f"|  | recited from 'A': `{rec['recited'][0]}`; cold 'K' -> {', '.join(rec['cold_prediction'])}"
                         " | | | | | |")
    write_json("metrics/alphabet_table.json", table)
    write_csv("plots/alphabet_table.csv", rows)
    write_text("metrics/alphabet_table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    run_stage(main, __doc__)
