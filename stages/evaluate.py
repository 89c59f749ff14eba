"""Stage evaluate: gather every stage's headline metrics into one summary JSON (the char model
beside its Kneser-Ney baseline, with the verdict), and draw what DVC's Vega plots cannot: the
char model's bits per character per epoch against the baseline's line, and the alphabet loss
curves of all framings on log-log axes."""

import lstm_pipeline.pinned  # noqa: F401  (first: pins NumPy's and OpenBLAS's kernels before they load)

from pathlib import Path

from lstm_pipeline.plots import baseline_plot, curves_plot, read_csv, read_tsv
from lstm_pipeline.stage import read_json, run_stage, write_metrics


def arguments(parser):
    parser.add_argument("--metrics", type=Path, required=True, help="folder of the stages' metrics JSON files")
    parser.add_argument("--alphabet-plots", type=Path, required=True, help="folder of alphabet@<framing> CSVs")
    parser.add_argument("--summary", type=Path, required=True, help="summary JSON to write")
    parser.add_argument("--alphabet-png", type=Path, required=True, help="alphabet loss-curves PNG to write")
    parser.add_argument("--train-live", type=Path, required=True, help="the train stage's DVCLive .tsv folder")
    parser.add_argument("--bpc-png", type=Path, required=True, help="char model vs baseline PNG to write")


def main(params, args):
    names = ("train", "baseline", "tutorial", "reload", "transfer", "alphabet_table", "sequential")
    train, baseline, tutorial, reload, transfer, alphabet, sequential = (
        read_json(args.metrics / f"{s}.json") for s in names
    )
    lstm_bpc, kn_bpc = train["final"]["heldout_bpc"], baseline["heldout_bpc"]
    summary = {
        "train": {**train["final"], "best_epoch": train["best_epoch"], "epochs_run": train["epochs_run"]},
        "baseline": {k: baseline[k] for k in ("order", "heldout_bpc", "heldout_perplexity")},
        # The char model against its classical baseline on the same held-out characters.
        "versus_baseline": {
            "bpc_ratio": lstm_bpc / kn_bpc,
            "bpc_improvement": 1.0 - lstm_bpc / kn_bpc,
            "lstm_beats_baseline": bool(lstm_bpc < kn_bpc),
        },
        "tutorial": tutorial["final"],
        "reload": {"bitwise_identical": reload["bitwise_identical"]},
        "transfer": transfer["transfer"],
        "scratch": transfer["scratch"],
        "forgetting": transfer["forgetting"],
        "alphabet": {name: row["plain"]["train_accuracy"] for name, row in alphabet.items() if name != "platform"},
        "sequential": {
            k: sequential[k] for k in ("final_average_accuracy", "average_forgetting", "joint_average_accuracy")
        },
    }
    write_metrics(args.summary, summary)
    verdict = "beats" if lstm_bpc < kn_bpc else "LOSES TO"
    print(
        f"evaluate: the char model ({lstm_bpc:.4f} bits/char held out) {verdict} its Kneser-Ney order-"
        f"{baseline['order']} baseline ({kn_bpc:.4f}) on {params.train.dataset}"
    )
    curves = {
        label: [(r["step"], r[name]) for r in read_tsv(args.train_live / f"{name}.tsv")]
        for label, name in (("LSTM, train (dropout on)", "train_bpc"), ("LSTM, held out", "heldout_bpc"))
    }
    baseline_plot(
        args.bpc_png,
        curves,
        kn_bpc,
        baseline_label=f"Kneser-Ney {baseline['order']}-gram, held out",
        best_epoch=train["best_epoch"],
        title=f"Char model on {params.train.dataset}: bits per character against its classical baseline",
        ylabel="bits per character",
        dpi=params.evaluate.dpi,
    )
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
