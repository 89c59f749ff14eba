"""Dataset builders and readers: texts cut into next-character windows, with a held-out split.

On disk a prepared dataset is a folder (written by `lstm_jax.io.prepare_dataset`):
  train.npy     int32[N, seq_length + 1]  windows every `stride` characters; inputs are [:, :-1],
                targets [:, 1:]
  heldout.npy   int32[M, seq_length + 1]  non-overlapping windows of the trailing part
  vocab.json    the dataset's `Vocabulary` (PAD, UNK, sorted characters)
  dataset.json  lengths and strides (`load_meta`)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_jax.errors import DataError
from lstm_jax.io._outputs import write_npy, write_text
from lstm_jax.io._vocab import Vocabulary


def source_text(text: str | None, repeat: int, separator: str, path: str | Path | None) -> str:
    """The text a `TextSource` describes: `text` repeated and joined, or a UTF-8 file's contents."""
    if path is not None:
        try:
            content = Path(path).read_text("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: expected UTF-8 text, found a non-UTF-8 byte at offset {exc.start}") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read the text file ({exc.strerror})") from None
        if not content:
            raise DataError(f"{path}: expected some text, found an empty file")
        return content
    return separator.join([text] * repeat)


def count_steps(n_windows: int, batch_size: int, epochs: int) -> int:
    """Optimizer steps of a run: whole batches per epoch (the remainder is dropped) times epochs."""
    return epochs * (n_windows // batch_size)


def window_counts(n_chars: int, seq_length: int, stride: int, heldout_fraction: float) -> tuple[int, int]:
    """(train windows, held-out windows) that `build_windows` makes from a text of n_chars
    (held-out windows do not overlap: their stride is seq_length)."""
    n_heldout = heldout_chars(n_chars, heldout_fraction, seq_length)
    span = seq_length + 1
    return (n_chars - n_heldout - span) // stride + 1, (n_heldout - span) // seq_length + 1


def heldout_chars(n_chars: int, heldout_fraction: float, seq_length: int) -> int:
    """Characters at the end of a text that are held out; raises if either part is too short."""
    n_heldout = max(int(round(n_chars * heldout_fraction)), seq_length + 1)
    if n_chars - n_heldout < seq_length + 1:
        raise DataError(
            f"text: expected at least {2 * (seq_length + 1)} characters to make train and "
            f"held-out windows of seq_length {seq_length}, found {n_chars}"
        )
    return n_heldout


def windows(ids: np.ndarray, seq_length: int, stride: int) -> np.ndarray:
    """int32[N, seq_length + 1]: every `stride`-th slice of length seq_length + 1 of ids int32[L]."""
    span = seq_length + 1
    if len(ids) < span:
        raise DataError(f"text: expected at least {span} characters for seq_length {seq_length}, found {len(ids)}")
    starts = np.arange(0, len(ids) - span + 1, stride)
    return ids[starts[:, None] + np.arange(span)[None, :]].astype(np.int32)


def split_text(ids: np.ndarray, heldout_fraction: float, seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ids int32[L] into a leading train part and a trailing held-out part.

    The split is by position, so no held-out window overlaps a training window.
    """
    n_heldout = heldout_chars(len(ids), heldout_fraction, seq_length)
    return ids[:-n_heldout], ids[-n_heldout:]


@dataclass(frozen=True)
class WindowDataset:
    """Next-character windows of one text: train int32[N, T+1], heldout int32[M, T+1]."""

    train: np.ndarray
    heldout: np.ndarray
    vocab: Vocabulary


def build_windows(text: str, seq_length: int, stride: int, heldout_fraction: float) -> WindowDataset:
    """Vocabulary of `text`, then train windows of `seq_length` inputs + 1 target every `stride`
    characters and non-overlapping held-out windows (each held-out character scored once)."""
    vocab = Vocabulary.from_text(text)
    train_ids, heldout_ids = split_text(vocab.encode(text), heldout_fraction, seq_length)
    return WindowDataset(
        train=windows(train_ids, seq_length, stride),
        heldout=windows(heldout_ids, seq_length, seq_length),
        vocab=vocab,
    )


def save_dataset(ds: WindowDataset, folder: str | Path) -> None:
    folder = Path(folder)
    write_npy(folder / "train.npy", ds.train)
    write_npy(folder / "heldout.npy", ds.heldout)
    write_text(folder / "vocab.json", ds.vocab.to_json())


def load_meta(folder: str | Path) -> dict:
    """dataset.json of a prepared dataset: characters, vocab_size, seq_length, stride, ..."""
    path = Path(folder) / "dataset.json"
    try:
        meta = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the dataset description ({exc}); run the prepare stage") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("stride"), int):
        raise DataError(f"{path}: expected a JSON object with an integer 'stride', found {str(meta)[:80]}")
    return meta


def load_dataset(folder: str | Path) -> WindowDataset:
    folder = Path(folder)
    for name in ("train.npy", "heldout.npy", "vocab.json"):
        if not (folder / name).is_file():
            raise DataError(f"{folder / name}: dataset file not found; run the prepare stage first")
    ds = WindowDataset(
        train=np.load(folder / "train.npy"),
        heldout=np.load(folder / "heldout.npy"),
        vocab=Vocabulary.load(folder / "vocab.json"),
    )
    for split in ("train", "heldout"):
        arr = getattr(ds, split)
        if arr.ndim != 2 or arr.dtype != np.int32 or (arr.size and arr.max() >= len(ds.vocab)):
            raise DataError(
                f"{folder / (split + '.npy')}: expected int32[N, T+1] ids below {len(ds.vocab)}, "
                f"found {arr.dtype}{list(arr.shape)}"
            )
    return ds


def stream_batches(ids: np.ndarray, batch_size: int, seq_length: int, doc_starts: np.ndarray | None = None):
    """Lay a long stream ids int[L] out for stateful training: int32[K, B, seq_length + 1].

    The stream is cut into `batch_size` contiguous parts, one per row, and each part into K
    consecutive windows, so row i of batch k+1 continues row i of batch k (the char-rnn / PTB
    language-model layout). Window k of row i covers part i's steps [k*T, (k+1)*T] inclusive:
    its last input is followed by its target, the first input of the next window.

    For a stream of documents, give doc_starts bool[L], True at the first id of each document:
    the result is then (windows int32[K, B, T + 1], reset bool[K, B, T]) with reset True at the
    inputs where a document starts, the `reset` argument of the LSTM layer (the state is zeroed
    there, inside a window as well as at its first step).
    """
    ids = np.asarray(ids)
    k = (len(ids) - 1) // (batch_size * seq_length)
    if k < 1:
        raise DataError(
            f"stream: expected at least {batch_size * seq_length + 1} ids for batch_size "
            f"{batch_size} x seq_length {seq_length}, found {len(ids)}"
        )
    part = k * seq_length
    row_start = np.arange(batch_size) * part
    win_start = np.arange(k) * seq_length
    idx = row_start[None, :, None] + win_start[:, None, None] + np.arange(seq_length + 1)[None, None, :]
    if doc_starts is None:
        return ids[idx].astype(np.int32)
    doc_starts = np.asarray(doc_starts, bool)
    if doc_starts.shape != ids.shape:
        raise DataError(f"doc_starts: expected bool[{len(ids)}] like ids, found shape {doc_starts.shape}")
    return ids[idx].astype(np.int32), doc_starts[idx[..., :-1]]
