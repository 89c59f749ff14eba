"""`lstm-jax report`: the HTML page references only figures that exist."""

import re
import shutil
from pathlib import Path

import pytest

from lstm_jax.errors import LstmJaxError
from lstm_jax.report import FIGURES, build_report

ROOT = Path(__file__).resolve().parents[1]


def test_every_referenced_figure_exists(tmp_path):
    for path in [p for p, _ in FIGURES] + ["metrics/alphabet_table.md", "metrics/summary.json"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    (tmp_path / "report_files/dvc_plots").mkdir(parents=True)
    (tmp_path / "report_files/dvc_plots/index.html").write_text("<html></html>")
    out = tmp_path / "report.html"
    build_report(out, tmp_path, tmp_path / "report_files/dvc_plots/index.html")
    page = out.read_text()
    refs = re.findall(r"(?:src|href)='([^']+)'", page)
    assert len([r for r in refs if r.endswith(".png")]) == len(FIGURES)
    for ref in refs:
        assert (out.parent / ref).is_file(), ref
    assert "<table>" in page and "stateful" in page and "Headline metrics" in page


def test_missing_figures_are_a_clear_error(tmp_path):
    with pytest.raises(LstmJaxError, match=r"report: missing \['plots/train_loss.png'"):
        build_report(tmp_path / "report.html", tmp_path)
