"""The README's and docs' Python examples run as written, and the README's results table is the
one the committed metrics make (`lstm-pipeline results`)."""

import re
from pathlib import Path

import pytest

from lstm_pipeline.results import END, START, results_table

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [
    (page.relative_to(ROOT).as_posix(), i, code)
    for page in PAGES
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))
]


def test_the_docs_have_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("where, index, code", BLOCKS, ids=[f"{w}:{i}" for w, i, _ in BLOCKS])
def test_example_runs(where, index, code):
    if "import torch" in code or "from torch" in code:
        pytest.importorskip("torch")
    exec(compile(code, f"{where} example {index}", "exec"), {})


def test_the_results_table_is_what_the_metrics_say():
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index(START), readme.index(END) + len(END)
    assert readme[start:end] == results_table(ROOT), "README's results table is stale: paste `lstm-pipeline results`"


@pytest.mark.parametrize("kn_bpc, verdict", [(0.5, "**loses**"), (5.0, "wins")])
def test_the_table_says_who_wins(tmp_path, kn_bpc, verdict):
    """A model that loses says so, and one that wins says that: the verdict follows the figures."""
    import json
    import shutil

    shutil.copytree(ROOT / "metrics", tmp_path / "metrics")
    path = tmp_path / "metrics/baseline.json"
    kn = json.loads(path.read_text())
    kn["heldout_bpc"] = kn_bpc
    path.write_text(json.dumps(kn))
    row = next(line for line in results_table(tmp_path).splitlines() if line.startswith("| character model"))
    assert verdict in row and f"{kn_bpc:.4f}" in row
