"""The `optimizer` subsection that every trained model's params section has (train, tutorial,
transfer, classify, forecast): `lstm_pipeline.adapter.optimizer` turns it into
`lstm_jax.training.make_optimizer`'s optax transformation, the same way for every task."""

from __future__ import annotations

from dataclasses import dataclass

from lstm_pipeline.config.schema import check


@dataclass(frozen=True)
class OptimizerConfig:
    """Adam on a learning-rate schedule, optionally with gradient clipping and weight decay.
    The defaults are plain Adam at a constant rate."""

    learning_rate: float = check(rule=lambda v: v > 0, expect="a number > 0")
    schedule: str = check(
        "constant",
        rule=lambda v: v in ("constant", "cosine", "exponential"),
        expect="one of 'constant', 'cosine', 'exponential'",
    )
    warmup_steps: int = check(0, rule=lambda v: v >= 0, expect="an integer >= 0")
    final_lr_factor: float = check(1.0, rule=lambda v: 0 < v <= 1, expect="a number in (0, 1]")
    clip_norm: float | None = check(None, rule=lambda v: v > 0, expect="a number > 0")  # None: no clipping
    weight_decay: float = check(0.0, rule=lambda v: 0 <= v < 1, expect="a number in [0, 1)")
