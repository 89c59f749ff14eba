"""params.yaml validation: one clear message naming the key, before any training."""

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_spec import load_stages

from lstm_jax.errors import ConfigError
from lstm_pipeline.config.params import parse_params

ROOT = Path(__file__).resolve().parents[2]
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


BAD = [
    ("train.epochs", -1, r"train.epochs: expected an integer >= 1, found -1"),
    ("train.epochs", 2.5, r"train.epochs: expected an integer, found 2.5"),
    ("train.epochs", "five", r"train.epochs: expected an integer, found 'five'"),
    ("train.epochs", True, r"train.epochs: expected an integer, found True"),
    ("train.seed", -3, r"train.seed: expected an integer in \[0, 2\*\*32\)"),
    ("train.seed", 2**64, r"train.seed: expected an integer in \[0, 2\*\*32\)"),
    ("train.batch_size", 0, r"train.batch_size: expected an integer >= 1, found 0"),
    ("train.batch_size", 100000, r"train.batch_size: expected at most the \d+ training windows of 'python_docs'"),
    ("transfer.batch_size", 100000, r"transfer.batch_size: expected at most the \d+ training windows of 'text2'"),
    ("train.optimizer.schedule", "linear", r"train.optimizer.schedule: expected one of"),
    ("train.optimizer.learning_rate", 0, r"train.optimizer.learning_rate: expected a number > 0, found 0"),
    ("train.optimizer.learning_rate", float("inf"), r"train.optimizer.learning_rate: expected a finite number"),
    ("train.optimizer.learning_rate", float("nan"), r"train.optimizer.learning_rate: expected a finite number"),
    ("train.optimizer.final_lr_factor", 0, r"train.optimizer.final_lr_factor: expected a number in \(0, 1\]"),
    ("train.optimizer.warmup_steps", 10**6, r"train.optimizer.warmup_steps: expected at most the \d+ training steps"),
    ("train.optimizer", None, r"train.optimizer: expected a mapping, found None"),
    ("train.model.hidden_size", 0, r"train.model.hidden_size: expected an integer >= 1"),
    ("train.model.dropout", 1.0, r"train.model.dropout: expected a number in \[0, 1\)"),
    ("train.model.cell", "lstmgru", r"train.model.cell: expected one of 'lstm', 'gru', found 'lstmgru'"),
    ("train.model.dtype", "float64", r"train.model.dtype: expected one of 'float32', 'bfloat16', 'float16'"),
    (
        "train.model.implementation",
        "cuda",
        r"train.model.implementation: expected one of 'fused', 'native', found 'cuda'",
    ),
    (
        "train.model.cell",
        "gru",
        r"train.model.implementation: expected 'fused' with cell 'gru' and dtype 'float32' "
        r"\('native' runs float32 LSTMs only\), found 'native'",
    ),
    (
        "train.model.dtype",
        "bfloat16",
        r"train.model.implementation: expected 'fused' with cell 'lstm' and dtype 'bfloat16'",
    ),
    ("train.dataset", "text9", r"train.dataset: expected one of \['python_docs', 'text1', 'text2'\], found 'text9'"),
    ("tutorial.dataset", "text9", r"tutorial.dataset: expected one of \['python_docs', 'text1', 'text2'\]"),
    ("prepare.stride", 51, r"prepare.stride: expected at most prepare.seq_length \(50\), found 51"),
    ("prepare.texts.text1.stride", 0, r"prepare.texts.text1.stride: expected an integer >= 1"),
    ("prepare.texts.python_docs.builtin", "shakespeare", r"prepare.texts.python_docs.builtin: expected one of"),
    ("train.patience", 0, r"train.patience: expected an integer >= 1"),
    ("train.heldout_context", -1, r"train.heldout_context: expected an integer >= 0"),
    ("train.heldout_context", "carried", r"train.heldout_context: expected an integer"),
    ("train.model.io_dropout", 1.0, r"train.model.io_dropout: expected a number in \[0, 1\)"),
    ("train.optimizer.weight_decay", -0.1, r"train.optimizer.weight_decay: expected a number in \[0, 1\)"),
    ("baseline.orders", [], r"baseline.orders: expected a non-empty list"),
    ("baseline.orders", [3, 40], r"baseline.orders: expected integers in \[1, 12\], found 40"),
    ("baseline.orders", "5", r"baseline.orders: expected a non-empty list, found '5'"),
    ("transfer.forgetting_dataset", "nope", r"transfer.forgetting_dataset: expected one of"),
    ("prepare.heldout_fraction", 1.5, r"prepare.heldout_fraction: expected a number in \(0, 1\)"),
    ("prepare.seq_length", 5000, r"prepare.texts.text1: text: expected at least 10002 characters"),
    ("prepare.texts", {}, r"prepare.texts: expected at least one text, found none"),
    ("prepare.texts.text1.path", "texts/missing.txt", r"prepare.texts.text1: expected exactly one of"),
    ("prepare.texts.text1.text", "", r"prepare.texts.text1.text: expected a non-empty string"),
    ("prepare.texts.text1.repeat", 0, r"prepare.texts.text1.repeat: expected an integer >= 1"),
    ("reload.length", KeyError, r"reload.length: missing"),
    ("reload.seed_text", "", r"reload.seed_text: expected a non-empty string"),
    ("evaluate.dpi", 5, r"evaluate.dpi: expected an integer in \[30, 600\]"),
    ("evaluate", "high", r"evaluate: expected a mapping, found 'high'"),
]


@pytest.mark.parametrize("path, value, message", BAD, ids=[f"{p}={v!r}" for p, v, _ in BAD])
def test_bad_values_name_the_key(path, value, message):
    with pytest.raises(ConfigError, match=message):
        parse_params(with_change(path, value), ROOT)


@pytest.mark.parametrize("cell, dtype, implementation", [("gru", "bfloat16", "fused"), ("lstm", "float32", "native")])
def test_cell_and_dtype_reach_the_model(cell, dtype, implementation):
    """train.model.cell / dtype / implementation build a CharLM with that layer, compute dtype and
    recurrence, and the checkpoint's model config records them (so reload, transfer and generate
    rebuild it)."""
    import jax

    from lstm_jax.nn import GRU
    from lstm_jax.nn._models import model_config
    from lstm_pipeline.adapter import char_lm

    from lstm_jax.recurrence import native

    if implementation == "native" and not native.available():
        pytest.skip(f"native kernels unavailable: {native.unavailable_reason()}")
    raw = with_change("train.model.cell", cell)
    raw["train"]["model"]["dtype"] = dtype
    raw["train"]["model"]["implementation"] = implementation
    model = char_lm(parse_params(raw, ROOT).train.model, vocab_size=11)
    recorded = model_config(model)["kwargs"]
    assert (recorded["cell"], recorded["dtype"], recorded["implementation"]) == (cell, dtype, implementation)
    variables = model.init(jax.random.key(0), model.example_input())
    logits, state = model.apply(variables, model.example_input())
    assert logits.dtype == jax.numpy.float32 and logits.shape == (1, 1, 11)
    layer = model.bind(variables).lstm
    assert isinstance(layer, GRU) == (cell == "gru")
    assert state[0].h.dtype == jax.numpy.dtype(dtype)


def test_native_where_its_kernels_cannot_load_is_an_error(monkeypatch):
    """The library would warn and run "fused" (other bits than the committed outputs): the
    pipeline refuses instead, in one line naming the key and the reason."""
    from lstm_jax.recurrence import native
    from lstm_pipeline.adapter import char_lm

    monkeypatch.setattr(native, "available", lambda: False)
    monkeypatch.setattr(native, "unavailable_reason", lambda: "the C++ extension was not built")
    model = parse_params(RAW, ROOT).tutorial.model
    message = r"tutorial.model.implementation: expected 'fused' on this machine \(the C\+\+ extension was not built\)"
    with pytest.raises(ConfigError, match=message):
        char_lm(model, vocab_size=11, section="tutorial")
    char_lm(dataclasses.replace(model, implementation="fused"), vocab_size=11, section="tutorial")


def test_misspelled_key_suggests_the_right_one():
    raw = copy.deepcopy(RAW)
    raw["train"]["epocs"] = raw["train"].pop("epochs")
    with pytest.raises(ConfigError, match=r"train.epocs: unknown key \(did you mean 'epochs'\?\)"):
        parse_params(raw, ROOT)


def test_scientific_notation_without_a_dot_is_a_number():
    params = parse_params(with_change("train.optimizer.learning_rate", "3e-3"), ROOT)
    assert params.train.optimizer.learning_rate == 0.003


@pytest.mark.parametrize(
    "source, message",
    [
        ({"path": "texts/missing.txt"}, r"path: expected an existing UTF-8 file or folder, found nothing at 'texts/m"),
        ({"path": "/etc/hostname"}, r"path: expected a file or folder under texts/ \(so DVC tracks it\)"),
        ({"path": "texts/../params.yaml"}, r"path: expected a file or folder under texts/"),
        ({"path": "texts/README.md", "repeat": 3}, r"'repeat' and 'separator' apply to 'text' only"),
        (
            {"text": "abc", "path": "texts/README.md"},
            r"expected exactly one of 'text', 'path' or 'builtin', found \['text', 'path'\]",
        ),
    ],
)
def test_bad_text_sources(source, message):
    raw = copy.deepcopy(RAW)
    raw["prepare"]["texts"]["text1"] = source
    with pytest.raises(ConfigError, match=message):
        parse_params(raw, ROOT)


def test_empty_and_non_utf8_text_files(tmp_path):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts/empty.txt").write_text("")
    (tmp_path / "texts/latin1.txt").write_bytes("d\xe9j\xe0 vu".encode("latin-1"))
    for name, message in [
        ("empty.txt", "expected some text, found an empty file"),
        ("latin1.txt", "expected UTF-8 text, found a non-UTF-8 byte"),
    ]:
        raw = copy.deepcopy(RAW)
        raw["prepare"]["texts"]["text1"] = {"path": f"texts/{name}"}
        with pytest.raises(ConfigError, match=f"prepare.texts.text1.path: .*{name}: {message}"):
            parse_params(raw, tmp_path)


def test_text_path_that_does_not_exist():
    raw = copy.deepcopy(RAW)
    raw["prepare"]["texts"]["text1"] = {"path": "texts/missing.txt"}
    with pytest.raises(
        ConfigError,
        match=r"prepare.texts.text1.path: expected an existing UTF-8 file or folder, "
        r"found nothing at 'texts/missing.txt'",
    ):
        parse_params(raw, ROOT)


def test_stage_script_exits_nonzero_with_one_line_before_training(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(with_change("train.epochs", -1)))
    # The train stage's command line as dvc.yaml gives it (relative paths: under tmp_path).
    stage = load_stages()["train"]
    result = subprocess.run(
        [sys.executable, str(ROOT / stage.script), *stage.argv[2:], "--params", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {bad}: train.epochs: expected an integer >= 1, found -1"]
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()
    assert sorted(tmp_path.iterdir()) == [bad]  # nothing written at all (no data, checkpoints, dvclive)
