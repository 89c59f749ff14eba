"""`make report`: DVC's own views of the pipeline, gathered on one short page.

- every plot, drawn by `dvc plots show -o DIR` (the curves declared in dvc.yaml and the PNG
  figures the stages draw), on DVC's page DIR/index.html;
- the headline metrics the gate checks: `dvc metrics show --md metrics/summary.json`, shown as
  one metric per row (DVC prints one row per file, a table too wide to read);
- the alphabet table, metrics/alphabet_table.md as the `alphabet_table` stage wrote it. This is
  the one thing DVC cannot show: mean ± std over seeds per framing beside the accuracy the
  tutorial reported, and the stateful model's recital, which `dvc metrics show` would flatten
  into one wide row per file.

The page links DVC's plots page; paths in it are relative to it.
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
from pathlib import Path

from lstm_jax.errors import DataError
from lstm_jax.io import write_text

SUMMARY = "metrics/summary.json"
ALPHABET_TABLE = "metrics/alphabet_table.md"


def dvc(root: str | Path, *args: str) -> str:
    """Run `dvc ARGS` in `root` with this interpreter's DVC; return its standard output. A file DVC
    could not read is an error here (DVC itself only warns and exits 0)."""
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True)
    if result.returncode != 0 or "failed to load" in result.stderr:
        why = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise DataError(
            f"report: `dvc {' '.join(args)}` failed in {root}: {why[-1] if why else result.returncode}; "
            "run `make repro` first"
        )
    return result.stdout


def markdown_to_html(text: str, transpose: bool = False) -> str:
    """Paragraphs and pipe tables (as DVC and the stages write them) -> HTML. `transpose` turns a
    table of one data row into one column per row (name | value)."""
    parts, rows = [], []

    def flush():
        if not rows:
            return
        head, *body = rows
        if transpose and len(body) == 1:
            head, body = [head[0], body[0][0]], [[h, v] for h, v in zip(head[1:], body[0][1:], strict=True)]
        cells = lambda r, tag: "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in r)  # noqa: E731
        parts.append(
            "<table><thead><tr>"
            + cells(head, "th")
            + "</tr></thead><tbody>"
            + "".join(f"<tr>{cells(r, 'td')}</tr>" for r in body)
            + "</tbody></table>"
        )
        rows.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            row = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set("".join(row)) <= set("-: "):  # not the |---|---| rule
                rows.append(row)
        else:
            flush()
            if line.strip():
                parts.append(f"<p>{html.escape(line.strip())}</p>")
    flush()
    return "\n".join(parts)


def build_report(out: str | Path, root: str | Path = ".", dvc_plots: str | Path | None = None) -> list[str]:
    """Write the page `out` for the DVC repo at `root`; with `dvc_plots` (an index.html path), first
    draw every plot there with `dvc plots show`. Return the paths the page links, relative to it."""
    root, out = Path(root), Path(out)
    missing = [p for p in (SUMMARY, ALPHABET_TABLE) if not (root / p).is_file()]
    if missing:
        raise DataError(f"report: missing {missing}; run `make repro` first")
    refs, parts = (
        [],
        [
            "<!doctype html><html><head><meta charset='utf-8'><title>lstm-jax report</title>",
            "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}</style>",
            "</head><body><h1>lstm-jax pipeline report</h1>",
        ],
    )
    if dvc_plots is not None:
        dvc_plots = Path(dvc_plots)
        if dvc_plots.name != "index.html":
            raise DataError(f"report: --dvc-plots: expected a path ending in index.html, found {dvc_plots}")
        try:
            dvc(root, "plots", "show", "-o", os.path.abspath(dvc_plots.parent))
        except DataError:
            dvc_plots.unlink(missing_ok=True)  # a page with plots missing, or an old one
            raise
        refs.append(os.path.relpath(dvc_plots, out.parent))
        link = html.escape(refs[-1])
        parts.append(f"<p>Every plot (<code>dvc plots show</code>): <a href='{link}'>{link}</a></p>")
    parts.append("<h2>Headline metrics (<code>dvc metrics show --md metrics/summary.json</code>)</h2>")
    parts.append(markdown_to_html(dvc(root, "metrics", "show", "--md", SUMMARY), transpose=True))
    parts.append(f"<h2>Alphabet experiments ({ALPHABET_TABLE})</h2>")
    parts.append(markdown_to_html((root / ALPHABET_TABLE).read_text("utf-8")))
    parts.append("</body></html>")
    write_text(out, "\n".join(parts) + "\n")
    return refs
