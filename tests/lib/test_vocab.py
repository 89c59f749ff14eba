"""Vocabulary: reserved ids, encoding, and moving rows between vocabularies by character."""

import numpy as np
import pytest

from lstm_jax.errors import LstmJaxError
from lstm_jax.io import PAD_ID, UNK_ID, Vocabulary, remap_ids
from lstm_jax.io._vocab import remap_rows


def test_reserved_ids_and_unknown_characters():
    v = Vocabulary.from_text("abca")
    assert v.tokens[PAD_ID] == "<pad>" and v.tokens[UNK_ID] == "<unk>"
    np.testing.assert_array_equal(v.encode("abz"), [2, 3, UNK_ID])
    assert v.decode([2, 3, 0, 4]) == "abc"


def test_union_keeps_old_ids_and_appends_new_characters():
    old, new = Vocabulary.from_text("abc"), Vocabulary.from_text("cbd")
    merged = old.union(new)
    assert merged.tokens[: len(old)] == old.tokens
    assert merged.tokens[len(old) :] == ("d",)


def test_remap_rows_moves_by_character_not_index():
    old = Vocabulary.from_text("abc")  # <pad> <unk> a b c
    new = Vocabulary.from_text("xcb")  # <pad> <unk> b c x
    old_emb = np.arange(5)[:, None] * np.ones((5, 2))
    fresh = np.full((5, 2), -1.0)
    out = remap_rows(old_emb, old, new, fresh, axis=0)
    # b was row 3, c row 4; x is new and keeps the fresh row; 'a' is dropped.
    np.testing.assert_array_equal(out[:, 0], [0, 1, 3, 4, -1])
    kernel = old_emb.T  # [2, V]: output kernel, vocabulary on axis 1
    np.testing.assert_array_equal(remap_rows(kernel, old, new, fresh.T, axis=1)[0], [0, 1, 3, 4, -1])


def test_remap_ids_sends_missing_characters_to_unk():
    old, new = Vocabulary.from_text("abc"), Vocabulary.from_text("bc")
    ids = old.encode("abcab")
    np.testing.assert_array_equal(remap_ids(ids, old, new), [UNK_ID, 2, 3, UNK_ID, 2])


def test_remap_rows_rejects_wrong_sizes():
    old, new = Vocabulary.from_text("ab"), Vocabulary.from_text("abc")
    with pytest.raises(LstmJaxError, match="expected sizes 4 and 5"):
        remap_rows(np.zeros((3, 2)), old, new, np.zeros((5, 2)))
