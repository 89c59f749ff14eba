"""The README's results table, made from the committed metrics: each task's LSTM beside the
strongest cheap baseline computed in the same stage, one line per dataset, with the verdict.

`lstm-pipeline results` prints it; tests/pipeline/test_readme.py fails when README.md's copy
(between the `<!-- results -->` markers) differs from what the metrics say.
"""

from __future__ import annotations

import json
from pathlib import Path

START, END = "<!-- results: made by `lstm-pipeline results`; a test keeps it current -->", "<!-- /results -->"


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _verdict(lstm: float, baseline: float, lower_is_better: bool) -> str:
    ratio = lstm / baseline if baseline else float("inf")
    worse = ratio > 1 if lower_is_better else ratio < 1
    change = abs(ratio - 1) * 100
    return f"**loses** ({change:.1f}% worse)" if worse else f"wins ({change:.1f}% better)"


def rows(root: Path) -> list[tuple[str, str, str, str, str]]:
    """(task, data and measure, LSTM, strongest baseline, verdict) per dataset, from root/metrics."""
    metrics = root / "metrics"
    found = []
    train, kn = _read(metrics / "train.json"), _read(metrics / "baseline.json")
    lstm_bpc, kn_bpc = train["final"]["heldout_bpc"], kn["heldout_bpc"]
    found.append(
        (
            "character model",
            "python_docs, held-out bits per character",
            f"{lstm_bpc:.4f}",
            f"Kneser-Ney {kn['order']}-gram {kn_bpc:.4f}",
            _verdict(lstm_bpc, kn_bpc, lower_is_better=True),
        )
    )
    for path in sorted((metrics / "classify").glob("*.json")):
        m = _read(path)
        acc = m["lstm"]["test_accuracy"]
        name, best = max(m["baselines"].items(), key=lambda kv: kv[1])
        label = {"dtw_1nn": "1-NN DTW", "summary_logistic": "summary logistic"}.get(name, name)
        found.append(
            (
                "classification",
                f"{m['dataset']}, test accuracy ({len(m['lstm']['per_seed'])} seeds)",
                f"{acc['mean']:.3f} +- {acc['std']:.3f}",
                f"{label} {best:.3f}",
                _verdict(acc["mean"], best, lower_is_better=False),
            )
        )
    for path in sorted((metrics / "forecast").glob("*.json")):
        m = _read(path)
        strategy, lstm = min(m["lstm"].items(), key=lambda kv: kv[1]["mase"])
        name, best = min(m["baselines"].items(), key=lambda kv: kv[1]["mase"])
        label = {"seasonal_naive": "seasonal naive", "ets": "ETS"}.get(name, name)
        found.append(
            (
                "forecasting",
                f"{m['series']}, MASE over {m['origins']} origins (LSTM {strategy})",
                f"{lstm['mase']:.3f}",
                f"{label} {best['mase']:.3f}",
                _verdict(lstm["mase"], best["mase"], lower_is_better=True),
            )
        )
    return found


def results_table(root: Path) -> str:
    """The markdown table, between its markers."""
    header = "| task | data, measure | LSTM | strongest cheap baseline | LSTM against it |"
    lines = [START, "", header, "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows(root)]
    return "\n".join([*lines, "", END])
