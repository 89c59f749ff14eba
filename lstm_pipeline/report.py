"""`make report`: one HTML page with the pipeline's figures, the alphabet table and the headline
metrics, linking the interactive `dvc plots show` page. Paths in the page are relative to it."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from lstm_jax.errors import DataError
from lstm_jax.outputs import write_text

FIGURES = [
    ("plots/train_loss.png", "Loss curves: character model on text1"),
    ("plots/transfer_loss.png", "Transfer against from-scratch on text2"),
    ("plots/alphabet_loss.png", "Alphabet framings: loss curves, real and scrambled alphabet"),
    ("plots/forgetting.png", "Several datasets in a loop: the forgetting heatmap"),
]


def _markdown_table(text: str) -> str:
    rows = [line.strip().strip("|").split("|") for line in text.splitlines() if line.startswith("|")]
    rows = [r for r in rows if not set("".join(r)) <= set("-: ")]
    head, body = rows[0], rows[1:]
    cells = lambda r, tag: "".join(f"<{tag}>{html.escape(c.strip())}</{tag}>" for c in r)  # noqa: E731
    return ("<table><thead><tr>" + cells(head, "th") + "</tr></thead><tbody>"
            + "".join(f"<tr>{cells(r, 'td')}</tr>" for r in body) + "</tbody></table>")


def build_report(out: str | Path, root: str | Path = ".", dvc_plots: str | Path | None = None) -> list[str]:
    """Write the report to `out`; return the files it references (all checked to exist)."""
    root, out = Path(root), Path(out)
    missing = [p for p, _ in FIGURES if not (root / p).is_file()]
    for needed in ("metrics/alphabet_table.md", "metrics/summary.json"):
        if not (root / needed).is_file():
            missing.append(needed)
    if missing:
        raise DataError(f"report: missing {missing}; run `make repro` first")
    rel = lambda p: os.path.relpath(root / p, out.parent)  # noqa: E731
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>lstm-jax report</title>",
             "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}img{max-width:100%}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}</style>",
             "</head><body><h1>lstm-jax pipeline report</h1>"]
    refs = []
    if dvc_plots is not None:
        refs.append(rel(dvc_plots))
        parts.append(f"<p>Interactive plots (<code>dvc plots show</code>): <a href='{rel(dvc_plots)}'>open</a></p>")
    summary = json.loads((root / "metrics/summary.json").read_text("utf-8"))
    parts.append("<h2>Headline metrics</h2><pre>" + html.escape(json.dumps(summary, indent=1)) + "</pre>")
    parts.append("<h2>Alphabet table</h2>" + _markdown_table((root / "metrics/alphabet_table.md").read_text("utf-8")))
    for path, caption in FIGURES:
        refs.append(rel(path))
        parts.append(f"<h2>{html.escape(caption)}</h2><img src='{rel(path)}' alt='{html.escape(caption)}'>")
    parts.append("</body></html>")
    write_text(out, "\n".join(parts) + "\n")
    return refs
