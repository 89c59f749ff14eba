"""The CI metrics gate: every metric named in thresholds.yaml must exist, lie inside its band
(min/max) and, with a baseline revision, agree with the committed value within atol + rtol*|base|.

thresholds.yaml maps a metrics file to its metrics (dotted keys into the JSON):

    metrics/summary.json:
      train.heldout_accuracy: {min: 0.95, max: 1.0, atol: 0.002}
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lstm_jax.errors import ConfigError, LstmJaxError
from lstm_jax.io import read_regular_file
from lstm_pipeline.config.yamlfile import load_yaml, short

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
    raw = load_yaml(path, "thresholds file") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of metrics files to metrics, found {short(repr(raw), 80)}")
    checks = []
    for file, metrics in raw.items():
        where = f"{path}: {short(str(file), 120)}"
        parts = Path(str(file)).parts
        if not isinstance(file, str) or not parts or Path(file).is_absolute() or ".." in parts:
            raise ConfigError(f"{where}: expected a metrics file path inside the repository, found {file!r}")
        if not isinstance(metrics, dict) or not metrics:
            raise ConfigError(f"{where}: expected a mapping of metric names to rules")
        for key, rule in metrics.items():
            checks.append(Check(str(file), str(key), _rule(rule, f"{where}: {short(str(key), 120)}")))
    return checks


def _rule(rule, where: str) -> dict:
    """A band {min, max} and tolerances {atol, rtol}: numbers, min <= max, tolerances >= 0."""
    if not isinstance(rule, dict) or not rule or set(rule) - RULE_KEYS:
        raise ConfigError(f"{where}: expected a rule with keys from {sorted(RULE_KEYS)}, found {short(repr(rule))}")
    for name, value in rule.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ConfigError(f"{where}.{name}: expected a number, found {short(repr(value), 80)}")
        if name in ("atol", "rtol") and not (0 <= value < math.inf):
            raise ConfigError(f"{where}.{name}: expected a finite number >= 0, found {value!r}")
    lo, hi = rule.get("min", -math.inf), rule.get("max", math.inf)
    if lo > hi:
        raise ConfigError(f"{where}: expected min <= max, found min {lo!r} > max {hi!r} (an empty band)")
    return {k: float(v) for k, v in rule.items()}


def check_revision(rev: str, root: Path = Path(".")) -> str:
    """The commit `rev` names in the git repository at `root`, or one ConfigError."""
    if not rev or rev.startswith("-") or any(c in rev for c in " \t\n\0"):
        raise ConfigError(f"--baseline: expected a git revision such as HEAD, found {short(repr(rev), 80)}")
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
            cwd=root,
            capture_output=True,
            text=True,
        )
    except OSError as exc:
        raise ConfigError(f"--baseline: cannot run git to read revision {rev!r} ({exc.strerror})") from None
    if found.returncode != 0:
        raise ConfigError(f"--baseline: expected a git revision of the repository at {root}, found {rev!r} (unknown)")
    return found.stdout.strip()


def lookup(data, key: str) -> float | None:
    """The number at dotted `key` in JSON data (true/false count as 1/0), or None."""
    node = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool):
        return float(node)
    if not isinstance(node, (int, float)):
        return None
    try:
        return float(node)
    except OverflowError:  # an integer beyond float64
        return math.inf if node > 0 else -math.inf


METRICS_MAX_BYTES = 64 << 20


def _read_at(rev: str | None, path: str, root: Path):
    """The JSON at `path` in the work tree (rev None) or in commit `rev`; None if unreadable."""
    try:
        if rev is None:
            data = read_regular_file(root / path, METRICS_MAX_BYTES)
        else:
            shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True)
            if shown.returncode != 0:
                return None
            data = shown.stdout
        return json.loads(data.decode("utf-8"))
    except (OSError, LstmJaxError, ValueError, RecursionError):  # ValueError: JSON, UTF-8, huge ints
        return None


def run_checks(checks: list[Check], root: Path = Path("."), baseline: str | None = None) -> list[Check]:
    """Fill in value, baseline and verdict for every check; a `baseline` revision that git does
    not know is one ConfigError (not a failure per metric)."""
    if baseline is not None:
        baseline = check_revision(baseline, root)
    for c in checks:
        c.value = lookup(_read_at(None, c.path, root), c.key)
        if baseline is not None:
            c.baseline = lookup(_read_at(baseline, c.path, root), c.key)
        lo, hi = c.rule.get("min", float("-inf")), c.rule.get("max", float("inf"))
        if c.value is None:
            c.verdict = "FAIL: missing"
        elif not math.isfinite(c.value):
            c.verdict = "FAIL: not finite"
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
