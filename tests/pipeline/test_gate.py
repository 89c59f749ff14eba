"""`lstm-pipeline check-metrics`: bands, baselines, missing metrics, and the repo's own thresholds."""

import json
import subprocess
from pathlib import Path

import pytest

from lstm_jax.errors import ConfigError
from lstm_pipeline.cli import main
from lstm_pipeline.gate import load_thresholds, lookup, run_checks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repo with a committed metrics file (the baseline) and a thresholds file."""

    def git(*args):
        subprocess.run(
            ["git", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            env={
                "GIT_AUTHOR_NAME": "t",
                "GIT_AUTHOR_EMAIL": "t@t",
                "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@t",
                "PATH": "/usr/bin:/bin",
            },
        )

    (tmp_path / "metrics").mkdir()
    write(tmp_path, {"train": {"accuracy": 0.95, "ok": True}, "loss": 0.2})
    (tmp_path / "thresholds.yaml").write_text(
        "metrics/m.json:\n"
        "  train.accuracy: {min: 0.9, max: 1.0, atol: 0.01}\n"
        "  train.ok: {min: 1, max: 1}\n"
        "  loss: {max: 0.5, rtol: 0.1}\n"
    )
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "baseline")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(root, data):
    (root / "metrics/m.json").write_text(json.dumps(data))


def test_passes_when_metrics_match_the_baseline(repo, capsys):
    assert main(["check-metrics", "--baseline", "HEAD"]) == 0
    out = capsys.readouterr().out
    assert "metrics/m.json:train.accuracy  0.95" in out and "gate: 3 metrics within their bands, 0 outside" in out


@pytest.mark.parametrize(
    "data, verdict",
    [
        ({"train": {"accuracy": 0.5, "ok": True}, "loss": 0.2}, "FAIL: outside band"),  # degraded run
        ({"train": {"accuracy": 0.93, "ok": True}, "loss": 0.2}, "FAIL: differs from baseline"),  # beyond atol
        ({"train": {"accuracy": 0.95, "ok": False}, "loss": 0.2}, "FAIL: outside band"),
        ({"train": {"accuracy": 0.95, "ok": True}, "loss": 0.23}, "FAIL: differs from baseline"),  # beyond rtol
        ({"train": {"ok": True}, "loss": 0.2}, "FAIL: missing"),
    ],
)
def test_fails_on_a_degraded_or_missing_metric(repo, capsys, data, verdict):
    write(repo, data)
    assert main(["check-metrics", "--baseline", "HEAD"]) == 1
    assert verdict in capsys.readouterr().out


def test_within_tolerance_passes_and_band_alone_without_baseline(repo):
    write(repo, {"train": {"accuracy": 0.955, "ok": True}, "loss": 0.21})
    assert all(c.ok for c in run_checks(load_thresholds("thresholds.yaml"), repo, "HEAD"))
    write(repo, {"train": {"accuracy": 0.91, "ok": True}, "loss": 0.4})
    assert all(c.ok for c in run_checks(load_thresholds("thresholds.yaml"), repo))


def test_thresholds_naming_an_unknown_metric_fail(repo, capsys):
    (repo / "thresholds.yaml").write_text("metrics/m.json:\n  train.acuracy: {min: 0}\n")
    assert main(["check-metrics"]) == 1
    assert "FAIL: missing" in capsys.readouterr().out


def test_malformed_thresholds_are_a_clear_error(repo, capsys):
    (repo / "thresholds.yaml").write_text("metrics/m.json:\n  loss: {maximum: 1}\n")
    with pytest.raises(ConfigError, match=r"loss: expected a rule with keys from"):
        load_thresholds("thresholds.yaml")
    assert main(["check-metrics"]) == 2


def test_lookup():
    assert lookup({"a": {"b": 2}}, "a.b") == 2.0 and lookup({"a": True}, "a") == 1.0
    assert lookup({"a": {"b": "x"}}, "a.b") is None and lookup({}, "a") is None


def test_the_repo_metrics_pass_the_repo_thresholds():
    """The committed metrics lie inside the committed bands (CI then checks a fresh run)."""
    checks = run_checks(load_thresholds(ROOT / "thresholds.yaml"), ROOT)
    assert len(checks) >= 10
    assert [(c.path, c.key, c.verdict) for c in checks if not c.ok] == []


LOCK = """schema: '2.0'
stages:
  train:
    cmd: python stages/train.py
    outs:
    - path: metrics/train.json
      hash: md5
      md5: {train}
    - path: models/char
      hash: md5
      md5: {model}.dir
"""


@pytest.fixture
def pipeline_repo(repo):
    """`repo` with a committed dvc.lock and a pinned run's summary."""
    (repo / "dvc.lock").write_text(LOCK.format(train="a" * 32, model="b" * 32))
    (repo / "metrics/summary.json").write_text(json.dumps({"platform": {"portable": True}}))
    for args in (["add", "-A"], ["commit", "-qm", "results"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True)
    return repo


def test_check_reproduced_names_each_output_that_changed(pipeline_repo, capsys):
    assert main(["check-reproduced"]) == 0
    assert "every output bit for bit as committed in HEAD:dvc.lock" in capsys.readouterr().out
    (pipeline_repo / "dvc.lock").write_text(LOCK.format(train="a" * 32, model="c" * 32))
    assert main(["check-reproduced"]) == 1
    out = capsys.readouterr().out
    assert "differs from HEAD: train: models/char" in out and "metrics/train.json" not in out
    assert "1 outputs differ from the committed dvc.lock" in out


def test_check_reproduced_is_skipped_for_an_unpinned_run(pipeline_repo, capsys):
    (pipeline_repo / "dvc.lock").write_text(LOCK.format(train="d" * 32, model="c" * 32))
    (pipeline_repo / "metrics/summary.json").write_text(json.dumps({"platform": {"portable": False}}))
    assert main(["check-reproduced"]) == 0
    assert "skipped; this run was not pinned" in capsys.readouterr().out
    (pipeline_repo / "metrics/summary.json").write_text("{}")
    assert main(["check-reproduced"]) == 2
    assert "metrics/summary.json: expected a metrics file with platform.portable" in capsys.readouterr().err
