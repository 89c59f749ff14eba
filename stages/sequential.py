"""Stage sequential: one model over `sequential.datasets` datasets in a loop -> forgetting
matrix and its summary, the forgetting heatmap, loss curves (sequential and joint)."""

import lstm_pipeline.pinned  # noqa: F401  (first: pins NumPy's and OpenBLAS's kernels before they load)

import time
from pathlib import Path

from lstm_jax.training import forgetting_summary
from lstm_jax.io import write_csv
from lstm_pipeline.experiments import run_sequential
from lstm_pipeline.plots import heatmap
from lstm_pipeline.stage import run_stage, write_metrics


def arguments(parser):
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--loss-plot", type=Path, required=True, help="sequential training loss CSV to write")
    parser.add_argument("--joint-plot", type=Path, required=True, help="joint training loss CSV to write")
    parser.add_argument("--heatmap", type=Path, required=True, help="forgetting heatmap PNG to write")


def main(params, args):
    cfg = params.sequential
    start = time.perf_counter()
    result = run_sequential(cfg)
    matrix, joint = result["matrix"], result["joint"]
    metrics = {
        **forgetting_summary(matrix),
        "joint_average_accuracy": sum(joint) / len(joint),
        "matrix": {f"after_{i}": {f"dataset_{j}": v for j, v in enumerate(row)} for i, row in enumerate(matrix)},
        "joint": {f"dataset_{j}": v for j, v in enumerate(joint)},
    }
    write_metrics(args.metrics, metrics)
    write_csv(args.loss_plot, result["loss_rows"])
    write_csv(args.joint_plot, [{"epoch": e + 1, "loss": v} for e, v in enumerate(result["joint_loss"])])
    heatmap(
        args.heatmap,
        matrix,
        xlabel="evaluated on dataset",
        ylabel="after training on dataset",
        title="Accuracy A[i][j] (sequential training)",
        dpi=params.evaluate.dpi,
    )
    print(
        f"sequential: final average accuracy {metrics['final_average_accuracy']:.3f}, average forgetting "
        f"{metrics['average_forgetting']:.3f}, joint {metrics['joint_average_accuracy']:.3f} "
        f"({time.perf_counter() - start:.1f}s)"
    )


if __name__ == "__main__":
    run_stage(main, __doc__, arguments)
