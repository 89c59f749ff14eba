"""Character vocabulary with reserved PAD=0 and UNK=1, and remapping between vocabularies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_jax.errors import DataError

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
SPECIALS = (PAD, UNK)


@dataclass(frozen=True)
class Vocabulary:
    """An ordered list of tokens; id = position. tokens[0] is PAD and tokens[1] is UNK."""

    tokens: tuple[str, ...]

    def __post_init__(self):
        if tuple(self.tokens[:2]) != SPECIALS:
            raise DataError(f"vocabulary: expected {list(SPECIALS)} first, found {list(self.tokens[:2])}")
        if len(set(self.tokens)) != len(self.tokens):
            raise DataError("vocabulary: tokens must be unique")

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        """PAD, UNK, then the distinct characters of `text` in sorted order."""
        return cls(SPECIALS + tuple(sorted(set(text))))

    def union(self, other: Vocabulary) -> Vocabulary:
        """This vocabulary's tokens in their order, then `other`'s new tokens in theirs."""
        seen = set(self.tokens)
        return Vocabulary(self.tokens + tuple(t for t in other.tokens if t not in seen))

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def encode(self, text: str) -> np.ndarray:
        """int32[len(text)]; characters not in the vocabulary become UNK_ID."""
        index = self.index
        return np.array([index.get(ch, UNK_ID) for ch in text], dtype=np.int32)

    def decode(self, ids) -> str:
        """Characters for ids; PAD is dropped and UNK shown as U+FFFD."""
        out = []
        for i in np.asarray(ids).reshape(-1):
            tok = self.tokens[int(i)]
            if tok == PAD:
                continue
            out.append("\ufffd" if tok == UNK else tok)
        return "".join(out)

    def to_json(self) -> str:
        return json.dumps(list(self.tokens), ensure_ascii=False, indent=1) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: vocabulary file not found")
        return cls.from_list(json.loads(path.read_text("utf-8")), str(path))

    @classmethod
    def from_list(cls, tokens, where: str = "vocabulary") -> Vocabulary:
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError(f"{where}: expected a JSON list of strings")
        return cls(tuple(tokens))


def id_map(old: Vocabulary, new: Vocabulary) -> np.ndarray:
    """int32[len(old)]: for each old id, the new id of the same token (UNK_ID if absent)."""
    index = new.index
    return np.array([index.get(t, UNK_ID) for t in old.tokens], dtype=np.int32)


def remap_ids(ids, old: Vocabulary, new: Vocabulary) -> np.ndarray:
    """Re-encode ids of any shape from `old` to `new`, token by token."""
    return id_map(old, new)[np.asarray(ids)]


def remap_rows(old_rows, old: Vocabulary, new: Vocabulary, fresh_rows, axis: int = 0):
    """Rows (along `axis`) for the `new` vocabulary, moved by token from `old_rows`.

    `old_rows` has size len(old) along `axis`; `fresh_rows` has size len(new) and supplies the
    rows of tokens that `old` lacks (freshly initialised weights). Works for an embedding table
    float32[V, E] (axis 0), an output kernel float32[H, V] (axis 1) and a bias float32[V].
    """
    old_rows, fresh_rows = np.asarray(old_rows), np.asarray(fresh_rows)
    if old_rows.shape[axis] != len(old) or fresh_rows.shape[axis] != len(new):
        raise DataError(
            f"remap_rows: expected sizes {len(old)} and {len(new)} on axis {axis}, "
            f"found {old_rows.shape[axis]} and {fresh_rows.shape[axis]}"
        )
    old_index = old.index
    out = np.array(fresh_rows, copy=True)
    src = np.moveaxis(old_rows, axis, 0)
    dst = np.moveaxis(out, axis, 0)  # a view: writes land in `out`
    for new_id, tok in enumerate(new.tokens):
        if tok in old_index:
            dst[new_id] = src[old_index[tok]]
    return out
