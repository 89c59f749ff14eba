"""Errors meant for people: one line naming the key or path, what was expected and what was found.

The command line and the stage scripts print these as a single line and exit non-zero.
"""


class LstmJaxError(Exception):
    """Base class for errors caused by input (params, files, checkpoints), not by a bug."""


class ConfigError(LstmJaxError):
    """A value in params.yaml is missing, misspelled, of the wrong type or out of range."""


class CheckpointError(LstmJaxError):
    """A checkpoint is missing, corrupted, or does not fit the model it is restored into."""


class TrainingDiverged(LstmJaxError):
    """The loss, the gradient norm or the parameters became NaN or infinite during training."""
