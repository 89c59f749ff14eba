"""Reading the pipeline's small YAML files (params.yaml, thresholds.yaml) safely.

`load_yaml` reads YAML as DVC reads it (YAML 1.2, ruamel.yaml's safe loader: `yes` and `on` are
strings, `010` is 10, `1e-2` is a float, as `dvc params diff` and `dvc exp show` see them; PyYAML's
YAML 1.1 made them True, 8 and the string '1e-2'), minus what can explode or mislead: aliases (`*name`,
the "billion laughs": a 4 KB file expanding to gigabytes) and nesting deeper than
YAML_MAX_DEPTH are refused, a key given twice is an error (DVC refuses such a file; PyYAML
silently keeps the last), the file must be a regular UTF-8 file of at most YAML_MAX_BYTES
(UTF-16, latin-1 and FIFOs are named as such), and strings holding lone surrogates, which no
UTF-8 file can store, are refused. Every failure is one `ConfigError` naming the file and line.
"""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import ScalarNode

from lstm_jax.errors import ConfigError, LstmJaxError
from lstm_jax.io import read_regular_file

YAML_MAX_BYTES = 8 << 20  # params.yaml and thresholds.yaml are a few KB; texts go in texts/
YAML_MAX_DEPTH = 32
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


class _StrictComposer(Composer):
    """Refuses aliases (`*name`, the "billion laughs") and nesting deeper than YAML_MAX_DEPTH."""

    _nesting = 0

    def compose_node(self, parent, index):
        mark = self.parser.peek_event().start_mark
        if self.parser.check_event(AliasEvent):
            raise ConfigError(f"line {mark.line + 1}: YAML aliases (*name) are not supported; write the value out")
        if self._nesting >= YAML_MAX_DEPTH:
            raise ConfigError(f"line {mark.line + 1}: expected at most {YAML_MAX_DEPTH} levels of nesting")
        self._nesting += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._nesting -= 1


class _StrictConstructor(SafeConstructor):
    """A key given twice is an error naming both lines (DVC refuses such a file too)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode):
                key = self.construct_object(key_node)
                if key in seen:
                    raise ConfigError(
                        f"line {key_node.start_mark.line + 1}: duplicate key {short(repr(key), 80)} "
                        f"(first given on line {seen[key] + 1})"
                    )
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def _parse(text: str):
    """YAML 1.2 as DVC parses params (`YAML(typ="safe")`), with the strict composer and constructor."""
    parser = YAML(typ="safe", pure=True)
    parser.Composer, parser.Constructor = _StrictComposer, _StrictConstructor
    return parser.load(text)


def short(text: str, limit: int = 300) -> str:
    """`text` on one line, cut to `limit` characters (an error must never print a huge value)."""
    text = " ".join(text.split("\n"))
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _check_unicode(node, where: str) -> None:
    """Refuse lone surrogates (`"\\ud800"`), which no UTF-8 file can hold, anywhere in the tree."""
    if isinstance(node, str):
        try:
            node.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigError(
                f"{where or 'top level'}: expected valid Unicode text, found a lone surrogate "
                f"U+{ord(node[exc.start]):04X} at character {exc.start}"
            ) from None
    elif isinstance(node, dict):
        for key, value in node.items():
            _check_unicode(key, f"{where}: a key" if where else "a key")
            _check_unicode(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_unicode(value, f"{where}[{i}]")


def load_yaml(path: str | Path, what: str = "params file"):
    """The data in a small UTF-8 YAML file, or one ConfigError naming `path` (and the line):
    not found or not a regular file, larger than YAML_MAX_BYTES, not UTF-8 (UTF-16, latin-1),
    not valid YAML, aliases, duplicate keys, lone surrogates."""
    path = Path(path)
    try:
        data = read_regular_file(path, YAML_MAX_BYTES)
    except LstmJaxError as exc:
        found = "" if path.exists() else f"{path}: {what} not found"
        raise ConfigError(found or str(exc)) from None
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise ConfigError(f"{path}: expected UTF-8 text, found {name} (byte-order mark); save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: expected UTF-8 text, found byte 0x{data[exc.start]:02x} on line {line} "
            f"(offset {exc.start}); save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise ConfigError(f"{path}: expected UTF-8 text, found a NUL character (UTF-16 without a byte-order mark?)")
    try:
        raw = _parse(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML: {short(str(exc.problem or exc.context), 200)}{where}") from None
    except (YAMLError, ValueError, RecursionError) as exc:  # ValueError: an int of 5000 digits
        raise ConfigError(f"{path}: not valid YAML: {short(str(exc).splitlines()[0], 200)}") from None
    try:
        _check_unicode(raw, "")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return raw
