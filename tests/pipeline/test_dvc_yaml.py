"""dvc.yaml cannot go stale: static checks, no DVC run.

- Each stage's code deps are exactly its script, the library folder and the `lstm_pipeline`
  modules the script imports, directly or not (so editing the report or the plots reruns only
  the stages that use them, and a new import cannot be forgotten in deps).
- Each path is written once, on the command line: every path option of a stage's `cmd` is one
  of its deps or outs, and every dep and out is on its `cmd`; the command parses with the
  stage script's own arguments.
- Stage scripts take their paths from their command line and never rewrite `sys.argv`.
- The library imports none of the pipeline's dependencies when it is imported.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
from pathlib import Path

import pytest
import yaml
from pipeline_spec import DEP_FOLDERS, LIBRARY, PIPELINE, ROOT, code_deps, load_stages, pipeline_imports

STAGES = load_stages()
NAMES = sorted(STAGES)
# Options whose value is a key of params.yaml, not a path.
NOT_PATHS = {"--framing", "--section", "--dataset", "--series"}
# Read by way of params.yaml rather than the command line: prepare reads the files that
# `prepare.texts.<name>.path` names, which params validation requires to lie under texts/.
READ_THROUGH_PARAMS = {"prepare": {"texts"}}
# The real-data stages read user files that params name under series/ (their builtins come from wheels).
READ_THROUGH_PARAMS |= {
    f"{stage}@{key}": {"series"}
    for stage, section in (("classify", "datasets"), ("forecast", "series"))
    for key in yaml.safe_load((ROOT / "params.yaml").read_text())[stage][section]
}


def is_code(path: str) -> bool:
    return path == LIBRARY or path.split("/")[0] in (PIPELINE, "stages")


def inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def test_every_stage_is_found():
    assert {"prepare", "train", "reload", "transfer", "alphabet_table", "sequential", "evaluate"} <= set(NAMES)
    assert len([n for n in NAMES if n.startswith("alphabet@")]) >= 6  # one per alphabet.framings entry


@pytest.mark.parametrize("name", NAMES)
def test_code_deps_are_exactly_what_the_script_imports(name):
    stage = STAGES[name]
    code = sorted(d for d in stage.deps if is_code(d))
    assert len(code) == len(set(code)), f"{name}: a code dep is listed twice: {code}"
    expected = sorted({stage.script, LIBRARY, *code_deps(stage.script)})
    assert f"{PIPELINE}/__init__.py" in expected
    assert code == expected, (
        f"{name}: deps list {sorted(set(code) - set(expected))} that the script does not "
        f"import, and miss {sorted(set(expected) - set(code))}"
    )


@pytest.mark.parametrize("name", NAMES)
def test_no_stage_depends_on_the_whole_pipeline_package(name):
    assert not [d for d in STAGES[name].deps if d.rstrip("/") in (PIPELINE, f"./{PIPELINE}")], name


def test_module_finder_follows_imports_inside_functions():
    """stage.py imports the params only inside `run_stage`, and they import the schema: both count;
    as deps the config package is one folder."""
    found = pipeline_imports("stages/prepare.py")
    assert {f"{PIPELINE}/stage.py", f"{PIPELINE}/config/params.py", f"{PIPELINE}/config/schema.py"} <= found
    assert f"{PIPELINE}/report.py" not in found and f"{PIPELINE}/plots.py" not in found
    assert f"{PIPELINE}/config" in code_deps("stages/prepare.py") and DEP_FOLDERS == (f"{PIPELINE}/config",)
    assert not [f for f in code_deps("stages/prepare.py") if f.startswith(f"{PIPELINE}/config/")]


@pytest.mark.parametrize("name", NAMES)
def test_each_path_is_written_once_on_the_command_line(name):
    stage = STAGES[name]
    given = [value for option, value in stage.options if option not in NOT_PATHS]
    assert len(given) == len(set(given)), f"{name}: a path is given twice on its command line: {given}"
    declared = [p for p in stage.deps if not is_code(p)] + stage.outs
    assert len(declared) == len(set(declared)), f"{name}: a path is listed twice in deps/outs: {declared}"
    # Each path on the command line is declared: as it is, or (a folder) holding declared files.
    for path in given:
        assert any(inside(d, path) for d in declared), f"{name}: {path} is on its cmd but in no deps/outs"
    # Each declared path is on the command line: as it is, or inside a folder given there.
    missing = {d for d in declared if not any(inside(d, path) for path in given)}
    assert missing == READ_THROUGH_PARAMS.get(name, set()), f"{name}: {sorted(missing)} are not on its cmd"
    assert stage.script in stage.deps, f"{name}: its script {stage.script} is not in its deps"


@pytest.mark.parametrize("script", sorted({s.script for s in STAGES.values()}))
def test_the_command_line_parses_with_the_script_arguments(script):
    """Every option dvc.yaml passes exists, and every required one is passed."""
    spec = importlib.util.spec_from_file_location(f"stage_{Path(script).stem}", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # `run_stage` runs only under __main__
    parser = argparse.ArgumentParser(exit_on_error=False)
    module.arguments(parser)
    for stage in (s for s in STAGES.values() if s.script == script):
        try:
            args = parser.parse_args(stage.argv[2:])
        except (argparse.ArgumentError, SystemExit) as exc:
            pytest.fail(f"{stage.name}: `{stage.cmd}` does not parse with {script}'s arguments: {exc}")
        # Every option is given, but --logits: only the headline model writes held-out logits.
        assert all(v is not None for k, v in vars(args).items() if k != "logits"), stage.name


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "stages").glob("*.py")))
def test_no_stage_script_rewrites_sys_argv(script):
    """Paths come from dvc.yaml's command line as it is: no script builds or edits its argv."""
    source = (ROOT / "stages" / script).read_text("utf-8")
    assert "sys.argv" not in source, script
    names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Attribute)}
    names |= {a.asname or a.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert "argv" not in names, script


def module_level_imports(tree: ast.AST):
    """(module, inside_function, guarded_by_import_error) of every import in `tree`."""
    found = []

    def visit(node, in_function, guarded):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((a.name, in_function, guarded) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level == 0:
                    found.append((child.module, in_function, guarded))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True, False)
            elif isinstance(child, ast.Try):
                catches = {ast.unparse(h.type) for h in child.handlers if h.type is not None}
                catches = {c for group in catches for c in group.strip("()").replace(" ", "").split(",")}
                protected = bool(catches & {"ImportError", "ModuleNotFoundError"})
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), in_function, guarded or protected)
                for part in (*child.handlers, *child.orelse, *child.finalbody):
                    visit(ast.Module(body=[part], type_ignores=[]), in_function, guarded)
            else:
                visit(child, in_function, guarded)

    visit(tree, False, False)
    return found


FORBIDDEN = {PIPELINE, "dvc", "dvclive", "yaml", "matplotlib", "tqdm"}
LIBRARY_FILES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / LIBRARY).rglob("*.py"))


@pytest.mark.parametrize("path", LIBRARY_FILES)
def test_the_library_does_not_import_the_pipeline_or_its_dependencies(path):
    tree = ast.parse((ROOT / path).read_text("utf-8"), path)
    for module, in_function, guarded in module_level_imports(tree):
        top = module.split(".")[0]
        if top not in FORBIDDEN:
            continue
        # tqdm alone is optional: imported where a progress bar is drawn, falling back without it.
        assert top == "tqdm" and in_function and guarded, f"{path} imports {module}" + (
            " inside a function" if in_function else " at module level"
        )


def test_the_import_checker_sees_module_level_and_guarded_imports():
    tree = ast.parse(
        "import yaml\nif x:\n    from dvc import api\n"
        "def f():\n    try:\n        from tqdm import tqdm\n    except ImportError:\n        pass\n"
        "def g():\n    import tqdm\n"
    )
    assert module_level_imports(tree) == [
        ("yaml", False, False),
        ("dvc", False, False),
        ("tqdm", True, True),
        ("tqdm", True, False),
    ]


def test_the_training_fingerprint_reads_only_library_files(monkeypatch):
    """Editing the pipeline (its report, its plots) never voids a resumable train checkpoint:
    `code_fingerprint` hashes library files only."""
    from lstm_jax.training import _resume as resume

    read = []
    original = Path.read_text

    def recording(self, *args, **kwargs):
        read.append(Path(self).resolve())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", recording)
    resume.code_fingerprint()
    library = (ROOT / LIBRARY).resolve()
    assert read and all(p.is_relative_to(library) for p in read), read
    assert {p.relative_to(library).as_posix() for p in read} == set(resume.TRAINING_CODE)
