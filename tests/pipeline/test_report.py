"""`lstm-pipeline report`: DVC's plots page and metrics table plus the alphabet table, on a
small DVC repo made here (no pipeline run)."""

import json
import re
import subprocess
import sys

import pytest

from lstm_jax.errors import LstmJaxError
from lstm_pipeline.report import build_report, markdown_to_html

# A 1x1 PNG: DVC copies image plots as they are.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108000000003a7e9b550000000a49444154789c63"
    "6000000002000148afa4710000000049454e44ae426082"
)
ALPHABET_MD = """Alphabet experiments: mean ± std over 2 seeds.

| framing | epochs | real: train acc | tutorial reported |
|---|---|---|---|
| one_char | 3 | 4.0 ± 0.0% | 84% |
| stateful | 3 | 12.0 ± 0.0% | 100% |
|  | recited from 'A': `BCD` | | |
"""
DVC_YAML = """plots:
  - loss_curve:
      title: Loss per epoch, two runs
      x: step
      y:
        dvclive/a/plots/metrics/loss.tsv: loss
        dvclive/b/plots/metrics/loss.tsv: loss
  - plots/figure.png
"""


@pytest.fixture
def repo(tmp_path):
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    files = {
        "dvc.yaml": DVC_YAML,
        "metrics/alphabet_table.md": ALPHABET_MD,
        "metrics/summary.json": json.dumps(
            {"train": {"heldout_loss": 1.2345678, "heldout_accuracy": 0.75}, "reload": {"bitwise_identical": True}}
        ),
        "dvclive/a/plots/metrics/loss.tsv": "step\tloss\n1\t2.5\n2\t2.25\n",
        "dvclive/b/plots/metrics/loss.tsv": "step\tloss\n1\t3.5\n2\t3.125\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, "utf-8")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots/figure.png").write_bytes(PNG)
    return tmp_path


def test_report_gathers_dvc_plots_metrics_and_the_alphabet_table(repo):
    out = repo / "report.html"
    refs = build_report(out, repo, repo / "report_files/dvc_plots/index.html")
    assert refs == ["report_files/dvc_plots/index.html"]

    # DVC's plots page: the curve from both .tsv files and the PNG, copied beside it.
    plots = (repo / "report_files/dvc_plots/index.html").read_text("utf-8")
    assert "Loss per epoch, two runs" in plots and "3.125" in plots and "2.25" in plots
    assert "static/workspace_plots_figure.png" in plots
    assert (repo / "report_files/dvc_plots/static/workspace_plots_figure.png").read_bytes() == PNG

    page = out.read_text("utf-8")
    for ref in re.findall(r"(?:src|href)='([^']+)'", page):
        assert (out.parent / ref).is_file(), ref
    assert re.findall(r"href='([^']+)'", page) == refs
    # The metrics as `dvc metrics show --md` gives them (rounded to 5 digits), one per row.
    metrics = page.split("Headline metrics")[1].split("Alphabet")[0]
    assert "<tr><td>train.heldout_loss</td><td>1.23457</td></tr>" in metrics
    assert "<tr><td>reload.bitwise_identical</td><td>True</td></tr>" in metrics
    assert "<th>Path</th><th>metrics/summary.json</th>" in metrics
    # The alphabet table: its caption, header and every row, the recital row included.
    assert "<p>Alphabet experiments: mean ± std over 2 seeds.</p>" in page
    assert "<th>framing</th><th>epochs</th><th>real: train acc</th><th>tutorial reported</th>" in page
    assert "<tr><td>stateful</td><td>3</td><td>12.0 ± 0.0%</td><td>100%</td></tr>" in page
    assert "recited from &#x27;A&#x27;: `BCD`" in page


def test_markdown_tables_keep_their_shape():
    table = "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n"
    assert markdown_to_html(table) == (
        "<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody>"
        "<tr><td>1</td><td>2</td></tr><tr><td>3</td><td>4</td></tr></tbody></table>"
    )
    # Only a single-row table is transposed.
    assert markdown_to_html(table, transpose=True) == markdown_to_html(table)
    assert markdown_to_html("| k | x | y |\n|-|-|-|\n| f | 1 | 2 |\n", transpose=True) == (
        "<table><thead><tr><th>k</th><th>f</th></tr></thead><tbody>"
        "<tr><td>x</td><td>1</td></tr><tr><td>y</td><td>2</td></tr></tbody></table>"
    )


def test_missing_inputs_are_a_clear_error_and_nothing_is_written(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/summary.json").write_text("{}")
    with pytest.raises(LstmJaxError, match=r"report: missing \['metrics/alphabet_table.md'\]; run `make repro`"):
        build_report(tmp_path / "report.html", tmp_path, tmp_path / "report_files/dvc_plots/index.html")
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "report_files").exists()


def test_what_dvc_cannot_read_is_a_clear_error(repo):
    """DVC only warns (exit 0) about a plot or metrics file it cannot read; the report stops."""
    index = repo / "report_files/dvc_plots/index.html"
    (repo / "dvclive/b/plots/metrics/loss.tsv").unlink()
    with pytest.raises(LstmJaxError, match=r"report: `dvc plots show -o .*` failed in .*; run `make repro` first"):
        build_report(repo / "report.html", repo, index)
    assert not index.exists()  # no page with a plot missing
    (repo / "dvclive/b/plots/metrics/loss.tsv").write_text("step\tloss\n1\t3.5\n")
    (repo / "metrics/summary.json").write_text("{not json")
    with pytest.raises(LstmJaxError, match=r"report: `dvc metrics show --md metrics/summary.json` failed in "):
        build_report(repo / "report.html", repo, index)
    assert not (repo / "report.html").exists()

    # A dvc.yaml DVC cannot parse: DVC writes no page and warns; an old page is not left standing.
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text("an old page")
    (repo / "dvc.yaml").write_text("plots: [oops\n")
    with pytest.raises(LstmJaxError, match=r"report: .*dvc"):
        build_report(repo / "report.html", repo, index)
    assert not index.exists() and not (repo / "report.html").exists()
