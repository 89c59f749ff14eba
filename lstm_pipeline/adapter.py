"""The one adapter from params.yaml sections to library calls: models and optimizers are built
here from typed params fields, nowhere else."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import optax

from lstm_jax.recurrence import native
from lstm_jax.errors import ConfigError
from lstm_jax.nn import CharLM, build_model
from lstm_jax.training import make_optimizer
from lstm_pipeline.config.params import ModelConfig, OptimizerConfig


def char_lm(model: ModelConfig, vocab_size: int, section: str = "train") -> CharLM:
    """A CharLM from the `<section>.model` section and a vocabulary size."""
    require_native(model.implementation, f"{section}.model.implementation")
    return build_model("CharLM", {"vocab_size": vocab_size, **dataclasses.asdict(model)})


def checkpoint_model(ckpt, path) -> nn.Module:
    """The model of a loaded checkpoint (`lstm_jax.io.load_checkpoint`), refused as
    `require_native` says when it was trained with "native" and its kernels cannot load here."""
    require_native(getattr(ckpt.model, "implementation", None), f"{path}: model implementation")
    return ckpt.model


def require_native(implementation: str | None, where: str) -> None:
    """ "native" where its kernels cannot load is a one-line error in the pipeline, not the
    library's warning and fallback to "fused", which computes other bits than the committed
    outputs. `where` names the key (a params key, or a checkpoint's model config)."""
    if implementation == "native" and not native.available():
        raise ConfigError(
            f"{where}: expected 'fused' on this machine ({native.unavailable_reason()}), found 'native'; "
            "with 'fused' the outputs are not the committed bits"
        )


def optimizer(cfg: OptimizerConfig, total_steps: int) -> optax.GradientTransformation:
    """`lstm_jax.training.make_optimizer` from an `optimizer` section, for a run of `total_steps`."""
    return make_optimizer(
        cfg.learning_rate,
        total_steps,
        schedule=cfg.schedule,
        warmup_steps=cfg.warmup_steps,
        final_lr_factor=cfg.final_lr_factor,
        clip_norm=cfg.clip_norm,
        weight_decay=cfg.weight_decay,
    )


def many_runs_optimizer(cfg: OptimizerConfig, *, epochs: int, rows: int, batch_size: int):
    """`optimizer` for `make_many_runs_trainer` (classification, forecasting), whose schedule
    counts its optimizer steps: `epochs` epochs of rows // batch_size steps (batch capped at rows)."""
    return optimizer(cfg, epochs * (rows // min(batch_size, rows)))


def optimizer_record(cfg: OptimizerConfig, total_steps: int) -> dict:
    """What a checkpoint stores to rebuild the optimizer: its params section and the schedule length."""
    return {"config": dataclasses.asdict(cfg), "total_steps": total_steps}
