"""`lstm-jax` subcommands: output on success, one line and exit 2 on bad input."""

import json
import os

import jax
import numpy as np
import pytest

from lstm_jax.io import save_checkpoint, Vocabulary
from lstm_jax.cli import main
from lstm_jax.nn import CharLM
from lstm_jax.training import init_params


@pytest.fixture
def checkpoint(tmp_path):
    vocab = Vocabulary.from_text("abc ")
    model = CharLM(vocab_size=len(vocab), embed_dim=4, hidden_size=8)
    save_checkpoint(
        tmp_path / "ckpt",
        model=model,
        params=init_params(model, jax.random.key(0)),
        vocab=vocab,
        metadata={"dataset": "tiny"},
    )
    return tmp_path / "ckpt"


def test_info_prints_config_and_parameter_count(checkpoint, capsys):
    assert main(["info", str(checkpoint)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"]["kwargs"]["hidden_size"] == 8 and info["metadata"] == {"dataset": "tiny"}
    # embed 6*4 + lstm (4*32 + 8*32 + 32) + head (8*6 + 6)
    assert info["parameters"] == 24 + 416 + 54
    assert info["platform"]["jax"] == jax.__version__  # what produced the checkpoint's bits


def test_info_without_a_checkpoint_describes_this_machine_and_its_pins(capsys):
    assert main(["info"]) == 0
    machine = json.loads(capsys.readouterr().out)["machine"]
    assert machine["cores"] == len(os.sched_getaffinity(0)) and machine["intra_op_threads_pinned"] == 2
    assert "--xla_cpu_max_isa=AVX2" in machine["pinned_xla_flags"]


def test_predict_lists_next_characters_per_line(checkpoint, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("ab\nc z\n")
    assert main(["predict", str(checkpoint), str(tmp_path / "in.txt"), "--top", "3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["input"] for r in rows] == ["ab", "c z"]
    probs = [n["probability"] for n in rows[0]["next"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    # Batched with padding, each line gets what it gets alone.
    (tmp_path / "one.txt").write_text("ab\n")
    assert main(["predict", str(checkpoint), str(tmp_path / "one.txt"), "--top", "3"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert [n["token"] for n in alone["next"]] == [n["token"] for n in rows[0]["next"]]
    np.testing.assert_allclose([n["probability"] for n in alone["next"]], probs, atol=1e-5)
    assert main(["predict", str(checkpoint), str(tmp_path / "missing.txt")]) == 2


def test_generate_prints_prompt_and_continuation_reproducibly(checkpoint, capsys):
    argv = ["generate", str(checkpoint), "--prompt", "ab", "--length", "7", "--temperature", "1.0", "--top-k", "2"]
    outs = []
    for seed in ("3", "3", "4"):
        assert main([*argv, "--seed", seed]) == 0
        outs.append(capsys.readouterr().out.rstrip("\n"))
    assert outs[0].startswith("ab") and len(outs[0]) == 9
    assert outs[0] == outs[1]  # --seed is the random seed: same seed, same sample


def test_missing_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["info", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "config.json" in err[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "NOPE", "--length", "0"], "--length: expected an integer in [1, 1000000], found 0"),
        (["generate", "NOPE", "--length", "10000001"], "--length: expected an integer in [1, 1000000]"),
        (["generate", "NOPE", "--temperature", "-1"], "--temperature: expected a number >= 0, found -1.0"),
        (["generate", "NOPE", "--temperature", "nan"], "--temperature: expected a number >= 0"),
        (["generate", "NOPE", "--top-k", "-2"], "--top-k: expected an integer >= 0, found -2"),
        (["generate", "NOPE", "--prompt", ""], "--prompt: expected a non-empty text"),
        (["generate", "NOPE", "--seed", "-1"], "--seed: expected an integer in [0, 2**32)"),
        (["predict", "NOPE", "NOPE.txt", "--top", "0"], "--top: expected an integer >= 1, found 0"),
    ],
)
def test_argument_ranges_are_checked_before_anything_loads(argv, message, capsys):
    # The checkpoint "NOPE" does not exist: the range error must come first.
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_version_and_debug_after_the_subcommand(tmp_path, capsys):
    import lstm_jax

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"lstm-jax {lstm_jax.__version__}"
    from lstm_jax.errors import CheckpointError

    for argv in (["--debug", "info", str(tmp_path / "none")], ["info", str(tmp_path / "none"), "--debug"]):
        with pytest.raises(CheckpointError):  # --debug shows the traceback instead of one line
            main(argv)


def test_generate_refuses_a_model_that_is_not_a_char_lm(tmp_path, capsys):
    from lstm_jax.nn import SequenceClassifier

    model = SequenceClassifier(num_classes=3, hidden_size=4, features=2)
    save_checkpoint(
        tmp_path / "clf", model=model, params=init_params(model, jax.random.key(0)), vocab=Vocabulary.from_text("")
    )
    assert main(["generate", str(tmp_path / "clf")]) == 2
    assert "generate expects a CharLM checkpoint, found SequenceClassifier" in capsys.readouterr().err
