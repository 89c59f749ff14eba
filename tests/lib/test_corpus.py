"""Texts to datasets, streamed: the same ids whatever the chunking, folders in sorted order,
held-out windows that never overlap and never touch the training characters."""

import numpy as np
import pytest

from lstm_jax.io import (
    file_chunks,
    prepare_dataset,
    python_docs_text,
    text_files,
    window_stream,
    load_dataset,
    load_meta,
    Vocabulary,
)
from lstm_jax.io._datasets import build_windows
from lstm_jax.errors import DataError

TEXT = "It was the best of times, it was the worst of times; \u00e9t\u00e9 \u2014 caf\u00e9.\n" * 9


def prepare(tmp_path, chunks, **kw):
    kw = {"seq_length": 10, "stride": 10, "heldout_fraction": 0.2, **kw}
    meta = prepare_dataset(chunks, tmp_path / "ds", **kw)
    return load_dataset(tmp_path / "ds"), meta


def test_streamed_equals_in_memory_whatever_the_chunk_size(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    whole, _ = prepare(tmp_path / "a", lambda: iter([TEXT]), stride=3)
    tiny, meta = prepare(tmp_path / "b", lambda: file_chunks([path], chunk_chars=7), stride=3)
    reference = build_windows(TEXT, seq_length=10, stride=3, heldout_fraction=0.2)
    for ds in (whole, tiny):
        assert ds.vocab == reference.vocab == Vocabulary.from_text(TEXT)
        np.testing.assert_array_equal(ds.train, reference.train)
        np.testing.assert_array_equal(ds.heldout, reference.heldout)
    assert meta["characters"] == len(TEXT) and load_meta(tmp_path / "b" / "ds")["stride"] == 3


@pytest.mark.parametrize("stride", [1, 4, 10])
def test_parts_are_disjoint_and_heldout_characters_are_scored_once(tmp_path, stride):
    ds, meta = prepare(tmp_path, lambda: iter([TEXT]), stride=stride)
    ids = Vocabulary.from_text(TEXT).encode(TEXT)
    train, heldout = window_stream(ds.train, stride), window_stream(ds.heldout, 10)
    n_train = meta["train_characters"]
    # Training windows cover the training part only (up to a remainder shorter than a window).
    np.testing.assert_array_equal(train, ids[: len(train)])
    assert n_train - len(train) < stride + 10
    # Held-out windows start where the training part ends, step by seq_length, never overlap.
    np.testing.assert_array_equal(heldout, ids[n_train : n_train + len(heldout)])
    assert ds.heldout[:, 1:].size == len(heldout) - 1 == meta["heldout_windows"] * 10
    np.testing.assert_array_equal(ds.heldout[1:, 0], ds.heldout[:-1, -1])


def test_a_folder_is_its_files_in_sorted_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("second", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first\n", encoding="utf-8")
    (tmp_path / "b" / "1.txt").write_text("middle", encoding="utf-8")
    (tmp_path / ".hidden").write_text("never", encoding="utf-8")
    files = text_files(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["a.txt", "b/1.txt", "b/2.txt"]
    assert "".join(file_chunks(files, chunk_chars=4)) == "first\nmiddle\nsecond"


def test_python_docs_ship_with_python():
    text = python_docs_text()
    assert len(text) > 400_000 and "assert" in text and text == python_docs_text()


@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda p: p / "missing", "found nothing there"),
        (lambda p: p, "found none"),
        (lambda p: (p / "x.txt").write_bytes(b"ok \xff bad") and p / "x.txt", "non-UTF-8"),
    ],
)
def test_bad_sources_are_one_clear_error(tmp_path, setup, match):
    with pytest.raises(DataError, match=match):
        list(file_chunks(text_files(setup(tmp_path))))


def test_bad_strides_and_short_texts_are_refused(tmp_path):
    with pytest.raises(DataError, match="stride: expected an integer in"):
        prepare(tmp_path, lambda: iter([TEXT]), stride=11)
    with pytest.raises(DataError, match="expected at least"):
        prepare(tmp_path, lambda: iter(["short"]))
    with pytest.raises(DataError, match="found none"):
        prepare(tmp_path, lambda: iter([]))
