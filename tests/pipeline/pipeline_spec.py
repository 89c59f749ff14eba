"""dvc.yaml read the way DVC reads it, for the tests: `foreach` expanded, `${...}` resolved with
params.yaml, each stage's command split into its script and its `--option value` pairs, and
the `lstm_pipeline` modules a script imports (directly or not) found by AST."""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "lstm_pipeline"
LIBRARY = "lstm_jax"
TEMPLATE = re.compile(r"\$\{\s*([^}]+?)\s*\}")


def lookup(context: dict, dotted: str):
    node = context
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"${{{dotted}}}: not defined")
        node = node[part]
    return node


def resolve(value, context: dict):
    """`value` with every `${a.b}` replaced by its value in `context` (a whole-string template
    keeps the value's type, as in DVC)."""
    if isinstance(value, str):
        whole = TEMPLATE.fullmatch(value.strip())
        if whole:
            return lookup(context, whole.group(1))
        return TEMPLATE.sub(lambda m: str(lookup(context, m.group(1))), value)
    if isinstance(value, list):
        return [resolve(v, context) for v in value]
    if isinstance(value, dict):
        return {resolve(k, context): resolve(v, context) for k, v in value.items()}
    return value


@dataclass
class Stage:
    name: str
    cmd: str
    deps: list[str]
    outs: list[str]  # outs, metrics and plots

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.cmd)

    @property
    def script(self) -> str:
        argv = self.argv
        assert argv[0] == "python" and argv[1].startswith("stages/"), self.cmd
        return argv[1]

    @property
    def options(self) -> list[tuple[str, str]]:
        """The `--option value` pairs after the script, in order."""
        rest = self.argv[2:]
        assert len(rest) % 2 == 0 and all(o.startswith("--") for o in rest[::2]), f"{self.name}: {self.cmd}"
        return list(zip(rest[::2], rest[1::2], strict=True))


def paths(entries) -> list[str]:
    """Paths of a deps/outs/metrics/plots list whose entries are `path` or `{path: options}`."""
    found = []
    for entry in entries or []:
        found.extend([entry] if isinstance(entry, str) else list(entry))
    return found


def load_stages(root: Path = ROOT, params: dict | None = None) -> dict[str, Stage]:
    """Every stage of root/dvc.yaml, `foreach` expanded to `name@key`, templates resolved."""
    params = params if params is not None else yaml.safe_load((root / "params.yaml").read_text("utf-8"))
    spec = yaml.safe_load((root / "dvc.yaml").read_text("utf-8"))
    stages = {}
    for name, body in spec["stages"].items():
        if "foreach" in body:
            items = resolve(body["foreach"], params)
            pairs = items.items() if isinstance(items, dict) else ((str(i), i) for i in items)
            instances = [(f"{name}@{key}", {**params, "key": key, "item": item}) for key, item in pairs]
            template = body["do"]
        else:
            instances, template = [(name, params)], body
        for stage_name, context in instances:
            body = resolve(template, context)
            stages[stage_name] = Stage(
                stage_name,
                body["cmd"],
                paths(body.get("deps")),
                paths(body.get("outs")) + paths(body.get("metrics")) + paths(body.get("plots")),
            )
    return stages


def module_file(module: str, root: Path = ROOT) -> str | None:
    """`lstm_pipeline.x` -> "lstm_pipeline/x.py" (or the package's __init__.py); None outside it."""
    parts = module.split(".")
    if parts[0] != PIPELINE:
        return None
    path = Path(*parts)
    if (root / path).is_dir():
        return (path / "__init__.py").as_posix()
    return path.with_suffix(".py").as_posix()


def imported_modules(tree: ast.AST, package: str | None = None) -> set[str]:
    """Every module an `import` anywhere in `tree` (functions included) names, with the
    submodules named by `from package import name`."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .x import y inside a package
                base = (package or "").split(".")[: len((package or "").split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            parts = module.split(".")
            found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
            found.update(f"{module}.{alias.name}" for alias in node.names)  # kept below only if a file
    return found


def pipeline_imports(script: str | Path, root: Path = ROOT) -> set[str]:
    """The lstm_pipeline files (relative paths) `script` imports, directly or transitively."""
    seen, todo = set(), [(Path(script), None)]
    while todo:
        path, package = todo.pop()
        tree = ast.parse((root / path).read_text("utf-8"), str(path))
        for module in imported_modules(tree, package):
            file = module_file(module, root)
            if file is None or file in seen or not (root / file).is_file():
                continue
            seen.add(file)
            todo.append((Path(file), ".".join(Path(file).parent.parts)))
    return seen


# Packages a stage lists as one folder in its deps (every stage imports them through load_params).
DEP_FOLDERS = ("lstm_pipeline/config",)


def code_deps(script: str | Path, root: Path = ROOT) -> set[str]:
    """The deps entries of `script`'s pipeline imports: files, with those inside a DEP_FOLDERS
    package listed as the folder."""
    found = set()
    for file in pipeline_imports(script, root):
        folder = next((f for f in DEP_FOLDERS if file.startswith(f + "/")), None)
        found.add(folder or file)
    return found


def top_level_plots(root: Path = ROOT) -> tuple[list[tuple[str, str, list[str]]], list[str]]:
    """dvc.yaml's top-level `plots`: ([(data file, x column, [y columns])], [image files])."""
    spec = yaml.safe_load((root / "dvc.yaml").read_text("utf-8"))
    data, images = [], []
    for entry in spec.get("plots") or []:
        if isinstance(entry, str):
            images.append(entry)
            continue
        ((name, plot),) = entry.items()
        plot = plot or {}
        if not isinstance(plot.get("y"), dict):  # `- file: {x: ..., y: column}`: the name is the file
            y = plot.get("y")
            data.append((name, plot.get("x", "step"), [] if y is None else [y] if isinstance(y, str) else list(y)))
            continue
        for file, columns in plot["y"].items():
            data.append((file, plot.get("x", "step"), [columns] if isinstance(columns, str) else list(columns)))
    return data, images
