"""`lstm-pipeline` command line: check-params says ok or names the bad key in one line (exit 2);
`--version`; `--debug` before or after the subcommand shows the traceback instead."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import lstm_jax
from lstm_jax.errors import ConfigError, LstmJaxError
from lstm_pipeline.cli import main

ROOT = Path(__file__).resolve().parents[2]
MESSAGE = "train.epocs: unknown key (did you mean 'epochs'?)"


@pytest.fixture
def bad_params(tmp_path):
    """params.yaml with one misspelled key."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"]["epocs"] = raw["train"].pop("epochs")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return tmp_path / "params.yaml"


def test_check_params_accepts_the_repo_params(capsys):
    params = str(ROOT / "params.yaml")
    assert main(["check-params", params]) == 0
    assert capsys.readouterr().out.strip() == f"{params}: ok"


def test_check_params_names_the_bad_key_in_one_line(bad_params, capsys):
    assert main(["check-params", str(bad_params)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [f"error: {bad_params}: {MESSAGE}"]
    assert captured.out == ""


def test_check_params_of_a_missing_file(tmp_path, capsys):
    assert main(["check-params", str(tmp_path / "none.yaml")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {tmp_path / 'none.yaml'}: params file not found"]


def test_the_installed_command_exits_2_with_one_line(bad_params):
    """The console script itself (what `make repro` runs before `dvc repro`)."""
    script = Path(sys.executable).parent / "lstm-pipeline"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "lstm_pipeline.cli"]
    result = subprocess.run(
        [*command, "check-params", str(bad_params)], capture_output=True, text=True, timeout=120, cwd=bad_params.parent
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {bad_params}: {MESSAGE}"]
    assert "Traceback" not in result.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"lstm-pipeline {lstm_jax.__version__}"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_subcommand_shows_the_traceback(bad_params, where):
    argv = ["check-params", str(bad_params)]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    with pytest.raises(ConfigError, match=r"train\.epocs: unknown key"):
        main(argv)


@pytest.mark.parametrize("argv", [["check-metrics", "--thresholds", "none.yaml"], ["report", "--out", "r.html"]])
def test_debug_after_every_subcommand(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no thresholds file, no figures: both fail on input
    assert main(argv) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(LstmJaxError):
        main([*argv, "--debug"])
    assert not (tmp_path / "r.html").exists()
