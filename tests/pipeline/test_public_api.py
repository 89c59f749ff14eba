"""The arrow goes one way, through public names only: stages -> lstm_pipeline -> lstm_jax's
curated API. The library's subpackages keep their code in private `_x.py` modules behind an
`__init__` that lists what is public; the pipeline and the stages import only those names, and
the library never imports the pipeline."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUBPACKAGES = ("nn", "recurrence", "training", "io")


def imports(path: Path):
    """(module, name) for each `from module import name` and (module, None) for `import module`."""
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield from ((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from ((alias.name, None) for alias in node.names)


def private_uses(path: Path) -> list[str]:
    found = []
    for module, name in imports(path):
        parts = module.split(".")
        if parts[0] != "lstm_jax":
            continue
        if any(p.startswith("_") for p in parts) or (name or "").startswith("_"):
            found.append(f"{module}{'.' + name if name else ''}")
    return found


CLIENTS = sorted(p.relative_to(ROOT).as_posix() for d in ("lstm_pipeline", "stages") for p in (ROOT / d).rglob("*.py"))


@pytest.mark.parametrize("path", CLIENTS)
def test_the_pipeline_imports_public_library_names_only(path):
    assert private_uses(ROOT / path) == [], f"{path} imports private library code"


def test_the_check_finds_a_private_import(tmp_path):
    """The test above can fail."""
    probe = tmp_path / "probe.py"
    probe.write_text("from lstm_jax.recurrence._native import native_lstm\nfrom lstm_jax.io import _x\n")
    assert private_uses(probe) == ["lstm_jax.recurrence._native.native_lstm", "lstm_jax.io._x"]


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "lstm_jax").rglob("*.py")))
def test_the_library_never_imports_the_pipeline(path):
    assert not [m for m, _ in imports(ROOT / path) if m.split(".")[0] == "lstm_pipeline"], path


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_each_subpackage_keeps_its_code_private_and_lists_its_api(package):
    folder = ROOT / "lstm_jax" / package
    modules = [p.name for p in folder.glob("*.py") if p.name != "__init__.py"]
    assert modules and all(m.startswith("_") for m in modules), modules
    api = importlib.import_module(f"lstm_jax.{package}")
    assert api.__all__ == sorted(api.__all__)
    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert not missing, f"lstm_jax.{package}.__all__ lists names it lacks: {missing}"
    public = {n for n in vars(api) if not n.startswith("_")}
    assert public - set(api.__all__) <= {m[1:-3] for m in modules}, sorted(public - set(api.__all__))
