"""The texts a character model trains on: params.yaml's `prepare` section (see `params.py`).

A text is inline, a file or folder under texts/, or a text that ships with Python; every
source is streamed in chunks (`lstm_jax.io`), so a 100 MB corpus is never held twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lstm_jax.io import PYTHON_DOCS, file_chunks, python_docs_text, scan, text_files, truncate
from lstm_jax.errors import ConfigError, LstmJaxError
from lstm_pipeline.config.schema import check as _check
from lstm_pipeline.config.schema import fraction as _fraction
from lstm_pipeline.config.schema import positive as _positive

BUILTIN_TEXTS = {PYTHON_DOCS: python_docs_text}


@dataclass(frozen=True)
class TextSource:
    """One text: inline (`text` repeated `repeat` times joined by `separator`), a file or a folder
    of files under texts/ (`path`), or a text that ships with Python (`builtin: python_docs`).
    `stride` overrides prepare.stride for this text."""

    text: str | None = None
    repeat: int = _positive(1)
    separator: str = ""
    path: str | None = None
    builtin: str | None = _check(None, rule=lambda v: v in BUILTIN_TEXTS, expect=f"one of {list(BUILTIN_TEXTS)}")
    stride: int | None = _check(None, rule=lambda v: v >= 1, expect="an integer >= 1")
    max_characters: int | None = _check(None, rule=lambda v: v >= 1, expect="an integer >= 1")  # a leading part only

    def chunks(self, root: Path):
        """A factory of chunk iterators over the text (`lstm_jax.io.prepare_dataset` reads it twice)."""
        if self.path is not None:
            files = text_files(root / self.path)
            return lambda: truncate(file_chunks(files), self.max_characters)
        text = BUILTIN_TEXTS[self.builtin]() if self.builtin is not None else self.inline()
        return lambda: truncate(iter([text]), self.max_characters)

    def inline(self) -> str:
        return self.separator.join([self.text] * self.repeat)

    def inline_length(self) -> int:
        return len(self.text) * self.repeat + len(self.separator) * (self.repeat - 1)

    def validate(self, where: str, root: Path) -> int:
        """Check the source and return its length in characters (reading the file, if any)."""
        given = [k for k in ("text", "path", "builtin") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(f"{where}: expected exactly one of 'text', 'path' or 'builtin', found {given or 'none'}")
        if self.builtin is not None:
            if self.repeat != 1 or self.separator:
                raise ConfigError(f"{where}: 'repeat' and 'separator' apply to 'text' only, found them with 'builtin'")
            return scan(self.chunks(root))[1]
        if self.text == "":
            raise ConfigError(f"{where}.text: expected a non-empty string, found ''")
        if self.text is not None:  # computed, not built: `repeat` may be huge (refused by the memory check)
            return min(self.inline_length(), self.max_characters or self.inline_length())
        if self.repeat != 1 or self.separator:
            raise ConfigError(f"{where}: 'repeat' and 'separator' apply to 'text' only, found them with 'path'")
        if Path(self.path).is_absolute() or Path(self.path).parts[:1] != ("texts",) or ".." in Path(self.path).parts:
            raise ConfigError(
                f"{where}.path: expected a file or folder under texts/ (so DVC tracks it), found {self.path!r}"
            )
        if not (root / self.path).exists():
            raise ConfigError(
                f"{where}.path: expected an existing UTF-8 file or folder, found nothing at {self.path!r}"
            )
        try:
            files = text_files(root / self.path)
            if all(f.stat().st_size == 0 for f in files):
                raise ConfigError(f"{where}.path: {self.path}: expected some text, found an empty file")
            return scan(self.chunks(root))[1]
        except LstmJaxError as exc:
            raise ConfigError(f"{where}.path: {exc}") from None


@dataclass(frozen=True)
class PrepareConfig:
    seq_length: int = _positive()
    heldout_fraction: float = _fraction()
    texts: dict[str, TextSource] = field(default_factory=dict)
    # Characters between training window starts; None: seq_length (non-overlapping, as char-rnn).
    stride: int | None = _check(None, rule=lambda v: v >= 1, expect="an integer >= 1")

    def stride_of(self, name: str) -> int:
        """The training-window stride of text `name`: its own, else prepare.stride, else seq_length."""
        return self.texts[name].stride or self.stride or self.seq_length
