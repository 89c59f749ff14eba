"""Issue 17, the library side: damaged or crafted checkpoints (kind 8), a second writer in a
checkpoint folder (kind 2), `lstm-jax` numbers and inputs (kinds 1 and 6), paths that leave
the project or are not regular files (kind 4): each a one-line error or the right result."""

import json
import logging
import os
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from lstm_jax import cli, limits
from lstm_jax.io import load_checkpoint, save_checkpoint, read_regular_file, Vocabulary
from lstm_jax.io._checkpoint import restore_opt_state, _config_digest
from lstm_jax.training import TrainCheckpointer, generate_text, init_params, make_optimizer
from lstm_jax.errors import ArgumentError, CheckpointError, ConfigError, DataError, LstmJaxError
from lstm_jax.nn import CharLM
from lstm_jax.io._safe_paths import resolve_inside

VOCAB = Vocabulary.from_text("abc z")
MODEL = CharLM(vocab_size=len(VOCAB), embed_dim=4, hidden_size=8)


def save(folder, seed=0, opt=False):
    params = init_params(MODEL, jax.random.key(seed))
    opt_state = make_optimizer(1e-3, 10, schedule="constant").init(params) if opt else None
    save_checkpoint(folder, model=MODEL, params=params, vocab=VOCAB, opt_state=opt_state)
    return folder


def edit_config(folder, change, reseal=False):
    config = json.loads((folder / "config.json").read_text())
    change(config)
    if reseal:  # a crafted checkpoint whose author also recomputed the hash
        config["integrity"]["config_sha256"] = _config_digest(config)
    (folder / "config.json").write_text(json.dumps(config))


def flip_byte(path, offset=-20):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# Kind 8: checkpoints carry hashes that load_checkpoint verifies.


def test_one_flipped_byte_in_params_is_a_clear_error(tmp_path):
    flip_byte(save(tmp_path / "c") / "params.msgpack")
    with pytest.raises(CheckpointError, match=r"params.msgpack: corrupted file: its SHA-256 differs from the one"):
        load_checkpoint(tmp_path / "c")


def test_one_flipped_byte_in_the_optimizer_state_is_a_clear_error(tmp_path):
    folder = save(tmp_path / "c", opt=True)
    flip_byte(folder / "opt_state.msgpack", offset=-3)
    template = make_optimizer(1e-3, 10, schedule="constant").init(init_params(MODEL, jax.random.key(0)))
    with pytest.raises(CheckpointError, match=r"opt_state.msgpack: corrupted file: its SHA-256 differs"):
        restore_opt_state(folder, template)


def test_another_models_params_of_the_same_shapes_are_refused(tmp_path):
    ours, theirs = save(tmp_path / "ours", seed=0), save(tmp_path / "theirs", seed=1)
    (ours / "params.msgpack").write_bytes((theirs / "params.msgpack").read_bytes())
    with pytest.raises(CheckpointError, match=r"ours/params.msgpack: corrupted file: .*another checkpoint's file"):
        load_checkpoint(ours)


def test_an_edited_config_is_refused(tmp_path):
    folder = save(tmp_path / "c")
    edit_config(folder, lambda c: c["model"]["kwargs"].update(dropout=0.5))
    with pytest.raises(CheckpointError, match=r"config.json: its SHA-256 differs from the one recorded in it at save"):
        load_checkpoint(folder)


def test_a_truncated_params_file_is_refused_before_decoding(tmp_path):
    folder = save(tmp_path / "c")
    (folder / "params.msgpack").write_bytes((folder / "params.msgpack").read_bytes()[:-1])
    with pytest.raises(CheckpointError, match=r"corrupted file: \d+ bytes, expected \d+ as saved"):
        load_checkpoint(folder)


@pytest.mark.parametrize("reseal", [False, True], ids=["saved before hashes", "hash recomputed"])
@pytest.mark.parametrize(
    "key, value, bound",
    [("num_layers", 100_000, r"at most 6 \(params.msgpack stores 6 arrays"), ("hidden_size", 10**12, r"at most \d+")],
)
def test_crafted_sizes_are_refused_before_the_model_is_built(tmp_path, key, value, bound, reseal):
    folder = save(tmp_path / "c")
    edit_config(folder, lambda c: c["model"]["kwargs"].update({key: value}) or (reseal or c.pop("integrity")), reseal)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=rf"config.json: model.kwargs.{key}: expected {bound}.*found {value}"):
        load_checkpoint(folder)
    assert time.perf_counter() - start < 5
    assert cli.main(["info", str(folder)]) == 2  # `lstm-jax info` does not hang either


def test_a_checkpoint_saved_before_hashes_still_loads_with_a_warning(tmp_path, caplog):
    folder = save(tmp_path / "c")
    edit_config(folder, lambda c: c.pop("integrity"))
    with caplog.at_level(logging.WARNING, logger="lstm_jax"):
        ckpt = load_checkpoint(folder)
    assert ckpt.model == MODEL and "cannot be verified (retrain to add them)" in caplog.text


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "config.json").write_text('{"format": 1' + "0" * 5000 + "}"), "corrupted checkpoint config"),
        (lambda f: (f / "config.json").write_text('{"format": 1, "integrity": 7}'), "malformed 'integrity' entry"),
        (lambda f: ((f / "config.json").unlink(), os.mkfifo(f / "config.json")), "checkpoint config not found"),
        (lambda f: edit_config(f, lambda c: c["integrity"]["files"].pop("params.msgpack"), True), "no hash recorded"),
    ],
)
def test_damaged_configs_are_one_clear_error(tmp_path, damage, message):
    folder = save(tmp_path / "c")
    damage(folder)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(folder)


# Kind 2: one writer per checkpoint folder.

HOLDER = """
import sys
from lstm_jax.training import TrainCheckpointer
from lstm_jax.nn import CharLM
from lstm_jax.io import Vocabulary
vocab = Vocabulary.from_text("ab")
c = TrainCheckpointer(sys.argv[1], every=1, fingerprint="x", model=CharLM(vocab_size=4), vocab=vocab, optimizer={})
c.latest()
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_second_writer_in_a_checkpoint_folder_fails_at_once(tmp_path):
    folder = tmp_path / "checkpoints"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        ours = TrainCheckpointer(folder, every=1, fingerprint="x", model=MODEL, vocab=VOCAB, optimizer={})
        with pytest.raises(CheckpointError, match=r"checkpoints: in use by another running process \(it holds"):
            ours.latest()
        holder.stdin.close()  # the holder ends (or dies): the kernel drops its lock
        holder.wait(timeout=60)
        assert ours.latest() is None
    finally:
        holder.kill()


# Kinds 1 and 6: `lstm-jax` numbers and inputs.


@pytest.mark.parametrize("temperature", ["1e-300", "inf", "-inf", "1e7", "5e-324"])
def test_temperatures_that_float32_cannot_divide_by_are_refused(temperature, capsys):
    assert cli.main(["generate", "NOPE", f"--temperature={temperature}"]) == 2
    assert "--temperature: expected" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=float("nan")), "temperature: expected 0 .greedy. or a number"),
        (dict(temperature=1e-30), "temperature: expected 0"),
        (dict(top_k=-1), "top_k: expected an integer >= 0"),
        (dict(length=0), "length: expected an integer >= 1"),
        (dict(length=2.5), "length: expected an integer >= 1"),
    ],
)
def test_the_library_refuses_bad_sampling_arguments(kwargs, message):
    args = {"length": 3, **kwargs}
    with pytest.raises(ArgumentError, match=message):
        generate_text(MODEL, init_params(MODEL, jax.random.key(0)), VOCAB, "ab", args.pop("length"), **args)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save(tmp_path_factory.mktemp("ckpt") / "c")


def alone(checkpoint, line):
    """Next-character probabilities after `line`, from one unpadded call."""
    ids = checkpoint.vocab.encode(line)[None]
    logits, _ = checkpoint.model.apply({"params": checkpoint.params}, ids)
    return np.asarray(jax.nn.softmax(logits[0, -1]))


def test_predict_batches_many_lines_and_long_ones_with_the_same_results(ckpt, tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = ["".join(rng.choice(list("abc z"), size=int(n))) for n in rng.integers(1, 40, size=150)]
    lines[7], lines[70] = "", "abc " * 150  # an empty line; a line of 600 characters (3 chunks of time steps)
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    assert cli.main(["predict", str(ckpt), str(tmp_path / "in.txt"), "--top", "10"]) == 0
    rows = [json.loads(r) for r in capsys.readouterr().out.splitlines()]
    assert [r["input"] for r in rows] == lines and rows[7] == {"input": "", "error": "empty line"}
    loaded = load_checkpoint(ckpt)
    for i in (0, 63, 64, 70, 149):
        expected = alone(loaded, lines[i])
        got = {n["token"]: n["probability"] for n in rows[i]["next"]}
        np.testing.assert_allclose([got[t] for t in loaded.vocab.tokens], expected, atol=2e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: os.mkfifo(p), "expected a regular file, found a"),
        (lambda p: p.mkdir(), "expected a regular file, found a"),
        (lambda p: p.write_bytes(b"ab\nc\ncaf\xe9\n"), r"line 3: expected UTF-8 text, found byte 0xe9 at column 4"),
    ],
)
def test_predict_refuses_bad_inputs_before_any_output(ckpt, tmp_path, capsys, make, message):
    make(tmp_path / "in.txt")
    assert cli.main(["predict", str(ckpt), str(tmp_path / "in.txt")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and message in err


def test_predict_refuses_a_line_longer_than_its_limit(ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "MAX_LINE_BYTES", 100)
    (tmp_path / "in.txt").write_text("ab\n" + "a" * 200 + "\n")
    assert cli.main(["predict", str(ckpt), str(tmp_path / "in.txt")]) == 2
    assert "line 2: expected at most 100 bytes, found 201" in capsys.readouterr().err


def test_output_to_a_closed_pipe_is_not_a_traceback(ckpt):
    proc = subprocess.Popen(
        [sys.executable, "-m", "lstm_jax.cli", "info", str(ckpt)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # as `lstm-jax info ... | head -c 0`
    assert proc.wait(timeout=120) == 141 and proc.stderr.read() == b""


def test_error_messages_are_one_line_and_cut_short(capsys):
    assert cli.fail(LstmJaxError("first\nsecond " + "x" * 100_000), debug=False) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: first second xx") and len(line) < 2100 and line.endswith("characters)")


# Kind 4: paths from configuration.


def test_paths_that_leave_the_root_or_are_not_regular_files(tmp_path):
    root = tmp_path / "repo"
    (root / "texts").mkdir(parents=True)
    (root / "texts/ok.txt").write_text("fine")
    (root / "texts/env").symlink_to("/proc/self/environ")
    (root / "texts/up").symlink_to(tmp_path)
    (tmp_path / "secret.txt").write_text("no")
    os.mkfifo(root / "texts/pipe")
    assert resolve_inside("texts/ok.txt", root) == (root / "texts/ok.txt").resolve()
    for path, message in [
        ("texts/env", r"expected a file inside .*, found 'texts/env' -> /proc/"),
        ("texts/up/secret.txt", r"expected a file inside"),
        ("texts/../../secret.txt", r"expected a file inside"),
        ("texts/pipe", r"expected a regular file, found a FIFO"),
        ("texts", r"expected a regular file, found a folder"),
        ("texts/none.txt", r"expected an existing file, found nothing"),
    ]:
        with pytest.raises(DataError, match=message):
            resolve_inside(path, root)
    start = time.perf_counter()
    with pytest.raises(DataError, match="expected a regular file, found a FIFO"):
        read_regular_file(root / "texts/pipe")  # refused at once: a FIFO is never read
    with pytest.raises(DataError, match="expected at most 3 bytes, found 4"):
        read_regular_file(root / "texts/ok.txt", max_bytes=3)
    assert time.perf_counter() - start < 1


# Limits: float32 ranges and the memory limit.


def test_float32_and_memory_limits(monkeypatch):
    for value in (5e-324, 1e-40, 1e39, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="representable in float32"):
            limits.check_float32(value, "x")
    limits.check_float32(0.0, "x")
    with pytest.raises(ConfigError, match="expected a positive number"):
        limits.check_float32(0.0, "x", positive=True)
    for raw, expected in (("8G", 8 * 2**30), ("1.5k", 1536), ("4096", 4096)):
        monkeypatch.setenv(limits.MEMORY_LIMIT_ENV, raw)
        assert limits.memory_limit() == expected
    for raw in ("0", "-1G", "lots", "nanG", "8X"):
        monkeypatch.setenv(limits.MEMORY_LIMIT_ENV, raw)
        with pytest.raises(ConfigError, match="LSTM_JAX_MEMORY_LIMIT: expected a size"):
            limits.memory_limit()
