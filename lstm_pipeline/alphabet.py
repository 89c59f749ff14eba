"""The alphabet problem: predict the next letter, in the six framings of Brownlee's tutorial
"Understanding Stateful LSTM Recurrent Neural Networks", plus a scrambled-alphabet control.

A letter is one float feature, its index / 26, as in the tutorial. The "alphabet" is an order
of the 26 letters: the real one, or a fixed random permutation (the scrambled control), where
no monotone or linear map from a letter's value to its successor's exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_pipeline.config.params import ALPHABET_KINDS as KINDS

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Patterns:
    """Inputs x float32[N, T, F], targets y int32[N] (letter index), mask bool[N, T] (False = pad)."""

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray


def letter_order(scrambled: bool, seed: int) -> np.ndarray:
    """int[26]: the sequence of letter indices to learn, A..Z or a fixed random permutation."""
    if not scrambled:
        return np.arange(26)
    return np.random.default_rng(seed).permutation(26)


def value(letters) -> np.ndarray:
    """The tutorial's encoding of letter indices: index / 26 as float32."""
    return np.asarray(letters, np.float32) / np.float32(len(LETTERS))


def build_patterns(
    kind: str, order: np.ndarray, *, window: int = 3, samples: int = 1000, max_length: int = 5, seed: int = 0
) -> Patterns:
    """The training patterns of one framing over the letter sequence `order` int[26].

    one_char:        letter k -> letter k+1                     x[25, 1, 1]
    window_features: letters k..k+2 as 3 features of one step  x[23, 1, 3]
    window_steps:    letters k..k+2 as 3 time steps            x[23, 3, 1]
    variable_length: `samples` random runs of 1..max_length letters, pre-padded to max_length
                     and masked, so padding never looks like 'A' (whose value is 0) x[samples, 5, 1]
    """
    n = len(order)
    if kind == "one_char":
        x = value(order[:-1])[:, None, None]
        return Patterns(x, order[1:].astype(np.int32), np.ones(x.shape[:2], bool))
    if kind in ("window_features", "window_steps"):
        starts = np.arange(n - window)
        win = value(order[starts[:, None] + np.arange(window)])
        x = win[:, None, :] if kind == "window_features" else win[:, :, None]
        return Patterns(x, order[starts + window].astype(np.int32), np.ones(x.shape[:2], bool))
    if kind == "variable_length":
        rng = np.random.default_rng(seed)
        x = np.zeros((samples, max_length, 1), np.float32)
        mask = np.zeros((samples, max_length), bool)
        y = np.zeros(samples, np.int32)
        for i in range(samples):
            start = int(rng.integers(0, n - 1))
            length = int(rng.integers(1, min(max_length, n - 1 - start) + 1))
            x[i, max_length - length :, 0] = value(order[start : start + length])
            mask[i, max_length - length :] = True
            y[i] = order[start + length]
        return Patterns(x, y, mask)
    raise ValueError(f"kind: expected one of {KINDS}, found {kind!r}")


def spell(indices) -> str:
    return "".join(LETTERS[int(i)] for i in np.asarray(indices).reshape(-1))
