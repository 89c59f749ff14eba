"""`lstm-jax` subcommands: output on success, one line and exit 2 on bad input."""

import json

import jax
import numpy as np
import pytest

from lstm_jax.checkpoint import save_checkpoint
from lstm_jax.cli import main
from lstm_jax.models import CharLM
from lstm_jax.train import init_params
from lstm_jax.vocab import Vocabulary


@pytest.fixture
def checkpoint(tmp_path):
    vocab = Vocabulary.from_text("abc ")
    model = CharLM(vocab_size=len(vocab), embed_dim=4, hidden_size=8)
    save_checkpoint(tmp_path / "ckpt", model=model, params=init_params(model, jax.random.key(0)), vocab=vocab,
                    metadata={"dataset": "tiny"})
    return tmp_path / "ckpt"


def test_info_prints_config_and_parameter_count(checkpoint, capsys):
    assert main(["info", str(checkpoint)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"]["kwargs"]["hidden_size"] == 8 and info["metadata"] == {"dataset": "tiny"}
    # embed 6*4 + lstm (4*32 + 8*32 + 32) + head (8*6 + 6)
    assert info["parameters"] == 24 + 416 + 54


def test_predict_lists_next_characters_per_line(checkpoint, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("ab\nc z\n")
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "in.txt"), "--top", "3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["input"] for r in rows] == ["ab", "c z"]
    probs = [n["probability"] for n in rows[0]["next"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    # Batched with padding, each line gets what it gets alone.
    (tmp_path / "one.txt").write_text("ab\n")
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "one.txt"), "--top", "3"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert [n["token"] for n in alone["next"]] == [n["token"] for n in rows[0]["next"]]
    np.testing.assert_allclose([n["probability"] for n in alone["next"]], probs, atol=1e-5)
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "missing.txt")]) == 2


def test_generate_prints_seed_and_continuation(checkpoint, capsys):
    assert main(["generate", "--checkpoint", str(checkpoint), "--seed", "ab", "--length", "7",
                 "--temperature", "1.0", "--top-k", "2"]) == 0
    out = capsys.readouterr().out.rstrip("\n")
    assert out.startswith("ab") and len(out) == 9


def test_missing_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["info", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "config.json" in err[0]


def test_check_params_reports_the_bad_key(tmp_path, capsys):
    bad = tmp_path / "params.yaml"
    bad.write_text("prepare: {}\n")
    assert main(["check-params", str(bad)]) == 2
    assert "prepare.seq_length: missing" in capsys.readouterr().err
