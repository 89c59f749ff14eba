"""Stage evaluate: gather every stage's headline metrics into one summary JSON, and draw the
alphabet loss curves of all framings in one log-log PNG (a picture DVC's Vega plots cannot
draw: log axes over a variable number of files)."""

from pathlib import Path

from lstm_jax.outputs import write_json
from lstm_pipeline.plots import curves_plot, read_csv
from lstm_pipeline.stage import read_json, run_stage


def arguments(parser):
    parser.add_argument("--metrics", type=Path, required=True, help="folder of the stages' metrics JSON files")
    parser.add_argument("--alphabet-plots", type=Path, required=True, help="folder of alphabet@<framing> CSVs")
    parser.add_argument("--summary", type=Path, required=True, help="summary JSON to write")
    parser.add_argument("--alphabet-png", type=Path, required=True, help="alphabet loss-curves PNG to write")


def main(params, args):
    train, reload, transfer, alphabet, sequential = (
        read_json(args.metrics / f"{s}.json") for s in ("train", "reload", "transfer", "alphabet_table", "sequential")
    )
    summary = {
        "train": train["final"],
        "reload": {"bitwise_identical": reload["bitwise_identical"]},
        "transfer": transfer["transfer"],
        "scratch": transfer["scratch"],
        "forgetting": transfer["forgetting"],
        "alphabet": {name: row["plain"]["train_accuracy"] for name, row in alphabet.items()},
        "sequential": {
            k: sequential[k] for k in ("final_average_accuracy", "average_forgetting", "joint_average_accuracy")
        },
    }
    write_json(args.summary, summary)
    curves = {name: read_csv(args.alphabet_plots / f"{name}.csv") for name in params.alphabet.framings}
    curves_plot(
        args.alphabet_png,
        curves,
        "epoch",
        {"plain_loss": "-", "scrambled_loss": ":"},
        title="Alphabet framings: training loss (solid real, dotted scrambled alphabet)",
        ylabel="cross-entropy (mean over seeds)",
        dpi=params.evaluate.dpi,
    )
    print(f"evaluate: {summary}")


if __name__ == "__main__":
    run_stage(main, __doc__, arguments)
