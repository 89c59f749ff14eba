"""Stage sequential: one model over `sequential.datasets` datasets in a loop -> forgetting
matrix and its summary in metrics/sequential.json, plots/forgetting.png, loss curves."""

import time

from lstm_jax.cli import run_stage
from lstm_jax.experiments import run_sequential
from lstm_jax.metrics import forgetting_summary
from lstm_jax.outputs import write_csv, write_json
from lstm_jax.plots import heatmap


def main(params):
    cfg = params.sequential
    start = time.perf_counter()
    result = run_sequential(cfg)
    matrix, joint = result["matrix"], result["joint"]
    metrics = {**forgetting_summary(matrix), "joint_average_accuracy": sum(joint) / len(joint),
               "matrix": {f"after_{i}": {f"dataset_{j}": v for j, v in enumerate(row)} for i, row in enumerate(matrix)},
               "joint": {f"dataset_{j}": v for j, v in enumerate(joint)}}
    write_json("metrics/sequential.json", metrics)
    write_csv("plots/sequential_loss.csv", result["loss_rows"])
    write_csv("plots/joint_loss.csv", [{"epoch": e + 1, "loss": v} for e, v in enumerate(result["joint_loss"])])
    heatmap("plots/forgetting.png", matrix, xlabel="evaluated on dataset", ylabel="after training on dataset",
            title="Accuracy A[i][j] (sequential training)", dpi=params.evaluate.dpi)
    print(f"sequential: final average accuracy {metrics['final_average_accuracy']:.3f}, average forgetting "
          f"{metrics['average_forgetting']:.3f}, joint {metrics['joint_average_accuracy']:.3f} "
          f"({time.perf_counter() - start:.1f}s)")


if __name__ == "__main__":
    run_stage(main, __doc__)
