"""The CI metrics gate: every metric named in thresholds.yaml must exist, lie inside its band
(min/max) and, with a baseline revision, agree with the committed value within atol + rtol*|base|.

thresholds.yaml maps a metrics file to its metrics (dotted keys into the JSON):

    metrics/summary.json:
      train.heldout_accuracy: {min: 0.95, max: 1.0, atol: 0.002}
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from lstm_jax.errors import ConfigError

RULE_KEYS = {"min", "max", "atol", "rtol"}


@dataclass
class Check:
    path: str
    key: str
    rule: dict
    value: float | None = None
    baseline: float | None = None
    verdict: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


def load_thresholds(path: str | Path) -> list[Check]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: thresholds file not found")
    raw = yaml.safe_load(path.read_text("utf-8")) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of metrics files to metrics")
    checks = []
    for file, metrics in raw.items():
        if not isinstance(metrics, dict) or not metrics:
            raise ConfigError(f"{path}: {file}: expected a mapping of metric names to rules")
        for key, rule in metrics.items():
            if not isinstance(rule, dict) or not rule or set(rule) - RULE_KEYS:
                raise ConfigError(
                    f"{path}: {file}: {key}: expected a rule with keys from {sorted(RULE_KEYS)}, found {rule!r}"
                )
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rule.values()):
                raise ConfigError(f"{path}: {file}: {key}: expected numbers, found {rule!r}")
            checks.append(Check(str(file), str(key), rule))
    return checks


def lookup(data, key: str) -> float | None:
    """The number at dotted `key` in JSON data (true/false count as 1/0), or None."""
    node = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool):
        return float(node)
    return float(node) if isinstance(node, (int, float)) else None


def _read_at(rev: str | None, path: str, root: Path):
    try:
        if rev is None:
            return json.loads((root / path).read_text("utf-8"))
        shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True)
        return json.loads(shown.stdout) if shown.returncode == 0 else None
    except (OSError, json.JSONDecodeError):
        return None


def run_checks(checks: list[Check], root: Path = Path("."), baseline: str | None = None) -> list[Check]:
    """Fill in value, baseline and verdict for every check."""
    for c in checks:
        c.value = lookup(_read_at(None, c.path, root), c.key)
        if baseline is not None:
            c.baseline = lookup(_read_at(baseline, c.path, root), c.key)
        lo, hi = c.rule.get("min", float("-inf")), c.rule.get("max", float("inf"))
        if c.value is None:
            c.verdict = "FAIL: missing"
        elif not lo <= c.value <= hi:
            c.verdict = "FAIL: outside band"
        elif baseline is not None and c.baseline is None:
            c.verdict = "FAIL: no baseline"
        elif baseline is not None and abs(c.value - c.baseline) > c.rule.get("atol", 0.0) + c.rule.get(
            "rtol", 0.0
        ) * abs(c.baseline):
            c.verdict = "FAIL: differs from baseline"
        else:
            c.verdict = "ok"
    return checks


def format_table(checks: list[Check]) -> str:
    def num(v):
        return "-" if v is None else f"{v:.6g}"

    rows = [("metric", "value", "band", "baseline", "tolerance", "verdict")]
    for c in checks:
        band = f"[{num(c.rule.get('min'))}, {num(c.rule.get('max'))}]"
        tol = f"atol {num(c.rule.get('atol', 0.0))} rtol {num(c.rule.get('rtol', 0.0))}"
        rows.append((f"{c.path}:{c.key}", num(c.value), band, num(c.baseline), tol, c.verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)
