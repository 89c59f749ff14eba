"""Errors meant for people: one line naming the key or path, what was expected and what was found.

Every error the library raises on purpose is a subclass of `LstmJaxError`, so a caller can
catch them all; each is also a `ValueError` where a plain wrong value caused it. The command
lines print them as a single line and exit non-zero.
"""


class LstmJaxError(Exception):
    """Base class for errors caused by input (arguments, files, checkpoints), not by a bug."""


class ConfigError(LstmJaxError, ValueError):
    """A configuration value (a model's fields, a pipeline param) is missing, misspelled, of the
    wrong type or out of range."""


class ArgumentError(LstmJaxError, ValueError):
    """A function was called with an array of the wrong shape or an argument out of range."""


class DataError(LstmJaxError, ValueError):
    """A dataset, text or vocabulary file is missing, unreadable or malformed, or too small."""


class CheckpointError(LstmJaxError):
    """A checkpoint is missing, corrupted, or does not fit the model it is restored into."""


class TrainingDiverged(LstmJaxError):
    """The loss, the gradient norm or the parameters became NaN or infinite during training."""
