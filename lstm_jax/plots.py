"""PNG figures from the pipeline's plot CSVs (matplotlib, headless)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
from matplotlib.ticker import MaxNLocator  # noqa: E402

from lstm_jax.outputs import write_bytes  # noqa: E402


def read_csv(path: str | Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def line_plot(path: str | Path, rows: list[dict], x: str, ys: list[str], *, title: str, ylabel: str,
              dpi: int = 100, log_y: bool = True) -> None:
    """One line per column in `ys` against column `x`, saved atomically as PNG."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for y in ys:
        ax.plot([r[x] for r in rows], [r[y] for r in rows], marker="o", label=y)
    ax.set(title=title, xlabel=x, ylabel=ylabel, yscale="log" if log_y else "linear")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    # No timestamp or software version in the file, so identical data gives identical bytes.
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    write_bytes(path, buf.getvalue())
