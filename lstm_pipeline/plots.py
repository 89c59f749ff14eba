"""PNG figures from the pipeline's plot CSVs (matplotlib, headless)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)

from lstm_jax.io import write_bytes  # noqa: E402


def read_csv(path: str | Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _save(fig, path, dpi: int) -> None:
    buf = io.BytesIO()
    # No timestamp or software version in the file, so identical data gives identical bytes.
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def heatmap(path: str | Path, matrix, *, xlabel: str, ylabel: str, title: str, dpi: int = 100) -> None:
    """A matrix float[N, M] in [0, 1] as an annotated heatmap PNG (rows = y, columns = x)."""
    matrix = [[float(v) for v in row] for row in matrix]
    fig, ax = plt.subplots(figsize=(1.2 * len(matrix[0]) + 2, 1.0 * len(matrix) + 1.5))
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xticks=range(len(matrix[0])), yticks=range(len(matrix)))
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    _save(fig, path, dpi)


def curves_plot(
    path: str | Path,
    series: dict[str, list[dict]],
    x: str,
    styles: dict[str, str],
    *,
    title: str,
    ylabel: str,
    dpi: int = 100,
) -> None:
    """Several runs' curves on log-log axes: one colour per entry of `series`, one line style
    per column in `styles` (column -> matplotlib style)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for k, (name, rows) in enumerate(series.items()):
        for column, style in styles.items():
            ax.plot(
                [r[x] for r in rows],
                [r[column] for r in rows],
                style,
                color=f"C{k}",
                label=name if style == next(iter(styles.values())) else None,
            )
    ax.set(title=title, xlabel=x, ylabel=ylabel, xscale="log", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path, dpi)


def read_tsv(path: str | Path) -> list[dict]:
    """A DVCLive metric file (tab-separated: step, value)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f, delimiter="\t")]


def baseline_plot(
    path: str | Path,
    curves: dict[str, list[tuple[float, float]]],
    baseline: float,
    *,
    baseline_label: str,
    best_epoch: int,
    title: str,
    ylabel: str,
    dpi: int = 100,
) -> None:
    """Per-epoch curves {label: [(epoch, value)]} against a baseline's value as a horizontal
    line, with the best epoch marked."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for k, (label, points) in enumerate(curves.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color=f"C{k}", label=label)
    ax.axhline(baseline, color="k", linestyle="--", label=f"{baseline_label}: {baseline:.3f}")
    ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch}), the one saved")
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path, dpi)


def forecast_plot(path, times, target, origins, lstm: dict, baselines: dict, *, title: str, dpi: int = 100) -> None:
    """Actuals of the series' tail, and from the first and last origin each LSTM's forecast float[O, H]
    with its interval half-widths float[H] (lstm: name -> (forecasts, half)) and each baseline's."""
    horizon = next(iter(lstm.values()))[0].shape[1]
    lo = max(0, int(origins[0]) - 4 * horizon)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    steps = range(lo, len(target))
    ax.plot(steps, target[lo:], color="black", lw=1.2, label="actual")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (i, origin) in enumerate(((0, int(origins[0])), (len(origins) - 1, int(origins[-1])))):
        span = range(origin, origin + horizon)
        for c, (name, (forecasts, half)) in enumerate(lstm.items()):
            ax.plot(span, forecasts[i], color=colors[c], lw=1.5, label=name if k == 0 else None)
            ax.fill_between(span, forecasts[i] - half, forecasts[i] + half, color=colors[c], alpha=0.15)
        for c, (name, forecasts) in enumerate(baselines.items(), start=len(lstm)):
            ax.plot(span, forecasts[i], color=colors[c], lw=1, ls="--", label=name if k == 0 else None)
    ticks = list(steps)[:: max(1, len(steps) // 8)]
    ax.set_xticks(ticks, [times[t] for t in ticks], rotation=30)
    ax.set(title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path, dpi)
