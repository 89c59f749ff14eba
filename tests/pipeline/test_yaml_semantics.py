"""params.yaml is read as DVC reads it (YAML 1.2), so the stage, `dvc params diff` and
`dvc exp show` see one value: `yes` is a string to both (PyYAML's YAML 1.1 made it True for the
stage only), `010` is 10 to both (8 for PyYAML), `1e-2` a float to both (a string for PyYAML)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dvc.utils.serialize import parse_yaml

from lstm_jax.errors import ConfigError
from lstm_pipeline.config.params import load_params
from lstm_pipeline.config.yamlfile import load_yaml

ROOT = Path(__file__).resolve().parents[2]
SCALARS = ["yes", "no", "on", "off", "NO", "True", "010", "0o10", "0x1F", "1_000", "1e-2", "1.0e+3", ".5", ".inf"]
SCALARS += ["~", "null", "2026-12-07", "'010'", '"yes"', "-0"]


@pytest.mark.parametrize("scalar", SCALARS)
def test_each_scalar_is_the_value_dvc_reads(tmp_path, scalar):
    text = f"section:\n  key: {scalar}\n  listed: [{scalar}]\n"
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert load_yaml(path) == parse_yaml(text, str(path))


def test_the_committed_files_read_the_same_both_ways():
    for name in ("params.yaml", "thresholds.yaml"):
        assert load_yaml(ROOT / name) == parse_yaml((ROOT / name).read_text(), name), name


def test_yes_for_a_boolean_is_a_clear_error(tmp_path):
    """DVC shows `shuffle: yes` as the string 'yes'; the stage refuses it rather than read True."""
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text().replace("shuffle: true", "shuffle: yes", 1))
    with pytest.raises(ConfigError, match=r"shuffle: expected true/false, found 'yes'"):
        load_params(path)
