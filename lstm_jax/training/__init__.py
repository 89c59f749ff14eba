"""Training and inference: the optax optimizer from plain arguments, `train_step`, the epoch
loop (`train_model`), the vmapped many-small-models trainers (classification, forecasting),
exact evaluation sums, generation, data parallelism and resumable checkpoints.
"""

from lstm_jax.training._timing import Timed, report
from lstm_jax.training._metrics import MetricSums, forgetting_summary
from lstm_jax.training._evaluation import Evaluator
from lstm_jax.training._step import EXPLODED_FACTOR, StepMetrics, init_params, make_optimizer, train_step
from lstm_jax.training._fit import FitResult, TrainResult, train_model
from lstm_jax.training._resume import TrainCheckpointer
from lstm_jax.training._parallel import run_metadata
from lstm_jax.training._generate import generate_text, make_sampler
from lstm_jax.training._long_sequences import remat_segments
from lstm_jax.training._many_runs import make_many_runs_trainer
from lstm_jax.training._classify import (
    fit_epochs,
    make_accuracy,
    make_best_epoch_trainer,
    make_predict_classes,
    make_trainer,
)
from lstm_jax.training._forecast import direct_forecast, make_forecast_trainer, mase, recursive_forecast, smape, windows
from lstm_jax.training._memory import keep_freed_memory

__all__ = [
    "EXPLODED_FACTOR",
    "Evaluator",
    "FitResult",
    "MetricSums",
    "StepMetrics",
    "Timed",
    "TrainCheckpointer",
    "TrainResult",
    "direct_forecast",
    "fit_epochs",
    "forgetting_summary",
    "generate_text",
    "init_params",
    "keep_freed_memory",
    "make_accuracy",
    "make_best_epoch_trainer",
    "make_forecast_trainer",
    "make_many_runs_trainer",
    "make_optimizer",
    "make_predict_classes",
    "make_sampler",
    "make_trainer",
    "mase",
    "recursive_forecast",
    "remat_segments",
    "report",
    "run_metadata",
    "smape",
    "train_model",
    "train_step",
    "windows",
]
