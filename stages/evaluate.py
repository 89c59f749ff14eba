"""Stage evaluate: gather every stage's metrics into metrics/summary.json; render PNG plots."""

from lstm_jax.cli import run_stage
from lstm_jax.outputs import read_json, write_json
from lstm_jax.plots import curves_plot, line_plot, read_csv


def main(params):
    dpi = params.evaluate.dpi
    train, reload, transfer, alphabet, sequential = (
        read_json(f"metrics/{s}.json") for s in ("train", "reload", "transfer", "alphabet_table", "sequential"))
    summary = {
        "train": train["final"],
        "reload": {"bitwise_identical": reload["bitwise_identical"]},
        "transfer": transfer["transfer"],
        "scratch": transfer["scratch"],
        "forgetting": transfer["forgetting"],
        "alphabet": {name: row["plain"]["train_accuracy"] for name, row in alphabet.items()},
        "sequential": {k: sequential[k] for k in ("final_average_accuracy", "average_forgetting",
                                                  "joint_average_accuracy")},
    }
    write_json("metrics/summary.json", summary)
    line_plot("plots/train_loss.png", read_csv("plots/train_loss.csv"), "epoch", ["train_loss", "heldout_loss"],
              title=f"train on {params.train.dataset}", ylabel="cross-entropy", dpi=dpi)
    line_plot("plots/transfer_loss.png", read_csv("plots/transfer_loss.csv"), "epoch",
              ["transfer_heldout_loss", "scratch_heldout_loss"],
              title=f"{params.transfer.dataset}: transfer vs from scratch", ylabel="held-out cross-entropy", dpi=dpi)
    alphabet_curves = {name: read_csv(f"plots/alphabet/{name}.csv") for name in params.alphabet.framings}
    curves_plot("plots/alphabet_loss.png", alphabet_curves, "epoch", {"plain_loss": "-", "scrambled_loss": ":"},
                title="Alphabet framings: training loss (solid real, dotted scrambled alphabet)",
                ylabel="cross-entropy (mean over seeds)", dpi=dpi)
    print(f"evaluate: {summary}")


if __name__ == "__main__":
    run_stage(main, __doc__)
