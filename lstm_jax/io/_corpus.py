"""Texts -> prepared next-character datasets, streamed: a 100 MB corpus is read in chunks and
held once, as int32 ids (4 bytes per character), never as several copies of the text.

Sources: an inline string, a UTF-8 file, a folder of files (read in sorted order of their
paths, a newline between files that do not end in one), or `python_docs_text()`, the
documentation topics that ship with every CPython (`pydoc_data.topics`, about 465 KB of English).

A prepared dataset is the folder `lstm_jax.io.load_dataset` reads: train.npy and heldout.npy
int32[N, seq_length + 1] windows, vocab.json, and dataset.json (the lengths and strides). The
held-out part is the trailing `heldout_fraction` of the characters; its windows never overlap
(stride = seq_length), so each held-out character is scored once, and no window of one part
reaches into the other.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from lstm_jax.io._datasets import heldout_chars
from lstm_jax.errors import DataError
from lstm_jax.io._outputs import write_text
from lstm_jax.io._safe_paths import open_regular
from lstm_jax.io._vocab import SPECIALS, UNK_ID, Vocabulary

CHUNK_CHARS = 1 << 22  # characters read at a time (16 MB of UTF-32 while encoding)
PYTHON_DOCS = "python_docs"


def python_docs_text() -> str:
    """Python's documentation topics (`pydoc_data.topics`, part of CPython), in sorted order of
    topic name, a blank line between topics: about 465 KB of English prose, grammar and code."""
    from pydoc_data.topics import topics

    return "\n".join(topics[name].rstrip("\n") + "\n" for name in sorted(topics))


def text_files(path: str | Path) -> list[Path]:
    """The files a `path:` names: the file itself, or every regular file under a folder
    (recursively, hidden ones skipped) in sorted order of their relative paths."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: expected a text file or a folder of text files, found nothing there")
    files = sorted(
        p
        for p in path.rglob("*")
        if not p.is_dir() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )  # anything but a regular file is refused when it is opened
    if not files:
        raise DataError(f"{path}: expected a folder holding text files, found none")
    return files


def file_chunks(files: list[Path], chunk_chars: int = CHUNK_CHARS) -> Iterator[str]:
    """The files' text in chunks of at most `chunk_chars` characters (universal newlines)."""
    last = "\n"
    for i, path in enumerate(files):
        if i and last != "\n":
            yield "\n"
        try:
            with open_regular(path, encoding="utf-8") as f:  # a FIFO is refused, never waited on
                while chunk := f.read(chunk_chars):
                    last = chunk[-1]
                    yield chunk
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: expected UTF-8 text, found a non-UTF-8 byte ({exc.reason})") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read the text file ({exc.strerror})") from None


def truncate(chunks: Iterator[str], max_characters: int | None) -> Iterator[str]:
    """The first `max_characters` characters of the chunks (all of them for None)."""
    left = max_characters
    for chunk in chunks:
        if left is not None:
            chunk = chunk[:left]
            left -= len(chunk)
        if chunk:
            yield chunk
        if left == 0:
            return


def scan(chunks: Callable[[], Iterator[str]]) -> tuple[Vocabulary, int]:
    """One pass: the vocabulary (PAD, UNK, sorted characters) and the length in characters."""
    chars: set[str] = set()
    n = 0
    for chunk in chunks():
        chars.update(chunk)
        n += len(chunk)
    if n == 0:
        raise DataError("text: expected some text, found none")
    return Vocabulary(SPECIALS + tuple(sorted(chars - set(SPECIALS)))), n


def encode(chunks: Callable[[], Iterator[str]], vocab: Vocabulary, n_chars: int) -> np.ndarray:
    """int32[n_chars]: the ids of the text, encoded chunk by chunk into one array."""
    index = vocab.index
    single = [t for t in vocab.tokens if len(t) == 1]
    points = np.array([ord(t) for t in single], np.int64)
    order = np.argsort(points)
    points, ids = points[order], np.array([index[t] for t in single], np.int32)[order]
    out = np.empty(n_chars, np.int32)
    pos = 0
    for chunk in chunks():
        code = np.frombuffer(chunk.encode("utf-32-le", "surrogatepass"), np.uint32).astype(np.int64)
        at = np.minimum(np.searchsorted(points, code), max(len(points) - 1, 0))
        found = points[at] == code if len(points) else np.zeros(len(code), bool)
        out[pos : pos + len(code)] = np.where(found, ids[at] if len(ids) else UNK_ID, UNK_ID)
        pos += len(code)
    if pos != n_chars:
        raise DataError(f"text: changed while it was read ({n_chars} characters, then {pos})")
    return out


def _save_npy(path: Path, array: np.ndarray) -> None:
    """np.save of a (possibly strided, non-contiguous) view, streamed to a temp file then renamed,
    so neither a second copy in memory nor a half-written file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _window_view(ids: np.ndarray, seq_length: int, stride: int, what: str) -> np.ndarray:
    span = seq_length + 1
    if len(ids) < span:
        raise DataError(f"{what}: expected at least {span} characters for seq_length {seq_length}, found {len(ids)}")
    return np.lib.stride_tricks.sliding_window_view(ids, span)[::stride]


def prepare_dataset(
    chunks: Callable[[], Iterator[str]],
    folder: str | Path,
    *,
    seq_length: int,
    stride: int,
    heldout_fraction: float,
) -> dict:
    """Scan, encode, split and window a text (given as a factory of chunk iterators, called
    twice) into a dataset folder. Train windows start every `stride` characters (1 <= stride
    <= seq_length, so every training character is in some window). Returns a summary dict."""
    if not 1 <= stride <= seq_length:
        raise DataError(f"stride: expected an integer in [1, seq_length={seq_length}], found {stride}")
    vocab, n_chars = scan(chunks)
    ids = encode(chunks, vocab, n_chars)
    n_heldout = heldout_chars(n_chars, heldout_fraction, seq_length)
    train, heldout = ids[:-n_heldout], ids[-n_heldout:]
    train_w = _window_view(train, seq_length, stride, "train part")
    heldout_w = _window_view(heldout, seq_length, seq_length, "held-out part")
    folder = Path(folder)
    _save_npy(folder / "train.npy", train_w)
    _save_npy(folder / "heldout.npy", heldout_w)
    write_text(folder / "vocab.json", vocab.to_json())
    meta = {
        "characters": n_chars,
        "vocab_size": len(vocab),
        "seq_length": seq_length,
        "stride": stride,
        "heldout_stride": seq_length,
        "train_characters": int(len(train)),
        "heldout_characters": int(n_heldout),
        "train_windows": int(train_w.shape[0]),
        "heldout_windows": int(heldout_w.shape[0]),
    }
    write_text(folder / "dataset.json", json.dumps(meta, indent=2) + "\n")
    return meta


def window_stream(windows: np.ndarray, stride: int) -> np.ndarray:
    """int32[L]: the characters windows int32[N, T+1] cut at `stride` <= T+1 cover, in order
    (the inverse of windowing): what a baseline must train on or score to see the same text."""
    if not 1 <= stride <= windows.shape[1]:
        raise DataError(f"stride: expected an integer in [1, {windows.shape[1]}], found {stride}")
    return np.concatenate([windows[:-1, :stride].reshape(-1), windows[-1]])
