"""params.yaml validation: one clear message naming the key, before any training."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lstm_jax.config import parse_params
from lstm_jax.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())


def with_change(path: str, value):
    raw = copy.deepcopy(RAW)
    *parents, last = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return raw


def test_repo_params_are_valid():
    params = parse_params(RAW, ROOT)
    assert params.train.epochs >= 1 and "text1" in params.prepare.texts


@pytest.mark.parametrize("path, value, message", [
    ("train.epochs", -1, r"train.epochs: expected an integer >= 1, found -1"),
    ("train.epochs", 2.5, r"train.epochs: expected an integer, found 2.5"),
    ("train.optimizer.schedule", "linear", r"train.optimizer.schedule: expected one of"),
    ("train.dataset", "text9", r"train.dataset: expected one of \['text1', 'text2'\], found 'text9'"),
    ("prepare.heldout_fraction", 1.5, r"prepare.heldout_fraction: expected a number in \(0, 1\)"),
    ("prepare.texts.text1.path", "texts/missing.txt", r"prepare.texts.text1: expected exactly one of"),
    ("reload.length", KeyError, r"reload.length: missing"),
])
def test_bad_values_name_the_key(path, value, message):
    with pytest.raises(ConfigError, match=message):
        parse_params(with_change(path, value), ROOT)


def test_misspelled_key_suggests_the_right_one():
    raw = copy.deepcopy(RAW)
    raw["train"]["epocs"] = raw["train"].pop("epochs")
    with pytest.raises(ConfigError, match=r"train.epocs: unknown key \(did you mean 'epochs'\?\)"):
        parse_params(raw, ROOT)


def test_text_path_that_does_not_exist():
    raw = copy.deepcopy(RAW)
    raw["prepare"]["texts"]["text1"] = {"path": "texts/missing.txt"}
    with pytest.raises(ConfigError, match=r"prepare.texts.text1.path: expected an existing UTF-8 file, found no file at 'texts/missing.txt'"):
        parse_params(raw, ROOT)


def test_stage_script_exits_nonzero_with_one_line_before_training(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(with_change("train.epochs", -1)))
    result = subprocess.run([sys.executable, str(ROOT / "stages/train.py"), "--params", str(bad)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {bad}: train.epochs: expected an integer >= 1, found -1"]
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()
