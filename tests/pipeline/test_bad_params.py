"""Issue 17, the pipeline side: hostile or careless params.yaml / thresholds.yaml files and
command lines end in one ConfigError naming the file and key (or the right result), before
anything is allocated or written.

Kinds: 1 resource bombs, 4 names and paths, 5 decoding and parsing, 6 numbers that are valid
floats but wrong (the gate's bands, float32), plus YAML aliases and duplicate keys.
"""

import copy
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from lstm_jax.errors import ConfigError
from lstm_pipeline.cli import main
from lstm_pipeline.gate import load_thresholds, run_checks
from lstm_pipeline.config.params import load_params, parse_params

ROOT = Path(__file__).resolve().parents[2]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())
TEXT = (ROOT / "params.yaml").read_text()


@pytest.fixture(autouse=True)
def memory_limit(monkeypatch):
    """Estimates compared with a fixed 8 GiB, whatever this machine has."""
    monkeypatch.setenv("LSTM_JAX_MEMORY_LIMIT", "8G")


def write(tmp_path, data: bytes | str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)

YAML_FILES = [
    ("billion laughs", TEXT + "\n" + LAUGHS, r"line \d+: YAML aliases \(\*name\) are not supported"),
    ("alias inside a value", TEXT.replace("seed_text:", "seed_text: &s") + "\nx: *s\n", r"aliases"),
    ("duplicate section", TEXT + "\ntrain:\n  epochs: 1\n", r"duplicate key 'train' \(first given on line \d+\)"),
    ("duplicate key", TEXT.replace("  epochs: 5\n", "  epochs: 5\n  epochs: 6\n", 1), r"duplicate key 'epochs'"),
    ("latin-1", TEXT.replace("quick", "qu\xefck").encode("latin-1"), r"expected UTF-8 text, found byte 0xef on line"),
    ("UTF-16 with BOM", TEXT.encode("utf-16"), r"expected UTF-8 text, found UTF-16 \(byte-order mark\)"),
    ("UTF-16 without BOM", TEXT.encode("utf-16-le"), r"expected UTF-8 text, found a NUL character"),
    ("UTF-32", TEXT.encode("utf-32"), r"found UTF-32"),
    ("unclosed bracket", "train: [1, 2\n", r"not valid YAML: .*\(line \d+, column \d+\)"),
    ("tab indentation", "train:\n\tepochs: 1\n", r"not valid YAML"),
    ("nested 200 deep", "a: " + "[" * 200 + "]" * 200 + "\n", r"expected at most 32 levels of nesting"),
    ("5000-digit integer", TEXT.replace("seed: 0", "seed: 1" + "0" * 5000, 1), r"not valid YAML: Exceeds the limit"),
    ("python tag", "a: !!python/object/apply:os.system [echo hi]\n", r"not valid YAML: could not determine"),
    ("lone surrogate", TEXT.replace('"the quick', '"\\ud800the quick', 1), r"prepare.texts.text1.text: "),
    ("empty file", "", r"params.yaml: expected a mapping of sections .* found None"),
    ("a list", "- 1\n- 2\n", r"expected a mapping of sections .* found \[1, 2\]"),
    ("over 8 MiB", TEXT + "#" * (9 << 20), r"expected at most 8388608 bytes"),
]


@pytest.mark.parametrize("data, message", [c[1:] for c in YAML_FILES], ids=[c[0] for c in YAML_FILES])
def test_bad_yaml_files_are_one_clear_error(tmp_path, data, message):
    path = write(tmp_path, data)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=message) as info:
        load_params(path)
    assert time.perf_counter() - start < 5
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text and len(text) < 1200


def test_lone_surrogate_names_the_character(tmp_path):
    with pytest.raises(ConfigError, match=r"text1.text: expected valid Unicode text, found a lone surrogate U\+D800"):
        load_params(write(tmp_path, TEXT.replace('"the quick', '"\\ud800the quick', 1)))


def test_a_huge_value_is_cut_short_in_the_message(tmp_path):
    path = write(tmp_path, TEXT.replace("epochs: 5", f"epochs: {'x' * 1_000_000}", 1))
    with pytest.raises(ConfigError, match=r"epochs: expected an integer, found 'xxx") as info:
        load_params(path)
    assert len(str(info.value)) < 1200 and "characters)" in str(info.value)


@pytest.mark.parametrize("kind", ["folder", "fifo", "missing"])
def test_params_path_that_is_not_a_regular_file(tmp_path, kind):
    path = tmp_path / "params.yaml"
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    message = {"folder": "expected a regular file, found a folder", "fifo": "found a FIFO", "missing": "not found"}
    with pytest.raises(ConfigError, match=message[kind]):
        load_params(path)  # a FIFO is refused at once, never read (which would block)


def with_change(path: str, value):
    raw = copy.deepcopy(RAW)
    *parents, last = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    node[last] = value
    return raw


BAD = [
    # kind 1: resource bombs (8 GiB limit)
    ("train.eval_batch_size", 10**9, r"train: training a CharLM .* would need about [\d.]+ TiB of memory, more"),
    ("train.model.hidden_size", 10**12, r"train: training a CharLM .* would need about"),
    ("train.model.num_layers", 10**6, r"train: training a CharLM .* would need about"),
    ("train.model.embed_dim", 10**9, r"train: training a CharLM .* would need about"),
    ("transfer.eval_batch_size", 10**9, r"transfer: training a CharLM .* would need about"),
    ("prepare.texts.text1.repeat", 10**10, r"prepare.texts.text1: .* would need about [\d.]+ TiB"),
    ("alphabet.samples", 10**9, r"alphabet.framings.variable_length: training .* would need about"),
    ("alphabet.seeds", 10**8, r"alphabet.framings.one_char: training .* would need about"),
    ("sequential.train_size", 10**10, r"sequential: training on \d+ sequences .* would need about"),
    ("sequential.features", 10**8, r"sequential: training on .* would need about"),
    ("train.epochs", 10**10, r"train.epochs: expected at most 2147483647 training steps in all \(int32\)"),
    ("alphabet.framings.one_char.epochs", 10**8, r"alphabet.framings.one_char.epochs: expected at most 2147483647"),
    ("alphabet.framings.one_char.epochs", 2**31, r"one_char: training 10 runs .* for 2147483648 epochs would need"),
    ("sequential.epochs", 10**8, r"sequential.epochs: expected at most 2147483647 training steps"),
    ("reload.length", 10**7, r"reload.length: expected at most 1000000 characters, found 10000000"),
    # kind 4: names that become paths
    ("alphabet.framings", {"../../../outside": RAW["alphabet"]["framings"]["one_char"]}, r"expected keys of ASCII"),
    ("alphabet.framings", {"a/b": RAW["alphabet"]["framings"]["one_char"]}, r"found 'a/b'"),
    ("alphabet.framings", {"": RAW["alphabet"]["framings"]["one_char"]}, r"alphabet.framings: expected keys"),
    ("alphabet.framings", {"caf\xe9": RAW["alphabet"]["framings"]["one_char"]}, r"alphabet.framings: expected keys"),
    ("alphabet.framings", {}, r"alphabet.framings: expected at least one framing, found none"),
    # kind 6: valid floats that float32 cannot hold
    ("train.optimizer.clip_norm", 5e-324, r"train.optimizer.clip_norm: expected a positive number representable"),
    ("train.optimizer.clip_norm", 0, r"train.optimizer.clip_norm: expected a number > 0, found 0"),
    ("transfer.optimizer.clip_norm", 1e-40, r"transfer.optimizer.clip_norm: expected a positive number repr"),
    ("train.optimizer.learning_rate", 1e39, r"train.optimizer.learning_rate: expected a positive number repr"),
    ("alphabet.learning_rate", 1e-50, r"alphabet.learning_rate: expected a positive number representable"),
    ("sequential.learning_rate", 1e300, r"sequential.learning_rate: expected a positive number representable"),
    ("sequential.shift", 1e308, r"sequential.shift: expected 0 or a number representable in float32"),
    ("sequential.shift", 1e38, r"sequential.shift: expected at most 1.7e\+37, so that the inputs of all 3"),
]


@pytest.mark.parametrize("path, value, message", BAD, ids=[f"{p}={str(v)[:20]}" for p, v, _ in BAD])
def test_bad_values_are_refused_before_anything_runs(path, value, message):
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=message):
        parse_params(with_change(path, value), ROOT)
    assert time.perf_counter() - start < 5


def test_the_repo_params_fit_in_8_gib():
    parse_params(RAW, ROOT)


def test_a_bad_memory_limit_names_the_variable(monkeypatch):
    monkeypatch.setenv("LSTM_JAX_MEMORY_LIMIT", "lots")
    with pytest.raises(ConfigError, match=r"LSTM_JAX_MEMORY_LIMIT: expected a size such as 8G"):
        parse_params(RAW, ROOT)


TEXTS = [
    ("fifo", lambda t: os.mkfifo(t / "pipe.txt"), r"texts/pipe.txt is a FIFO"),
    ("symlink to /proc", lambda t: (t / "env.txt").symlink_to("/proc/self/environ"), r"env.txt is a symlink to /proc"),
    ("symlink outside", lambda t: (t / "up").symlink_to(t.parent.parent), r"up is a symlink to .*, outside"),
    ("dangling symlink", lambda t: (t / "gone.txt").symlink_to(t / "nothing"), r"gone.txt cannot be resolved"),
]


@pytest.mark.parametrize("make, message", [c[1:] for c in TEXTS], ids=[c[0] for c in TEXTS])
def test_texts_folder_holds_only_regular_files_inside_the_repo(tmp_path, make, message):
    (tmp_path / "texts").mkdir()
    make(tmp_path / "texts")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"params.yaml: texts/: expected regular files inside the repository, "):
        load_params(write(tmp_path, TEXT))
    with pytest.raises(ConfigError, match=message):
        load_params(write(tmp_path, TEXT))
    assert time.perf_counter() - start < 5  # a FIFO is never opened


# The gate (thresholds.yaml, check-metrics).

THRESHOLDS = [
    ("min > max", "m.json:\n  a: {min: 2, max: 1}\n", r"m.json: a: expected min <= max, found min 2 > max 1"),
    ("NaN bound", "m.json:\n  a: {min: .nan}\n", r"m.json: a.min: expected a number, found nan"),
    ("negative atol", "m.json:\n  a: {atol: -1}\n", r"a.atol: expected a finite number >= 0, found -1"),
    ("infinite rtol", "m.json:\n  a: {rtol: .inf}\n", r"a.rtol: expected a finite number >= 0, found inf"),
    ("string bound", "m.json:\n  a: {min: low}\n", r"a.min: expected a number, found 'low'"),
    ("boolean bound", "m.json:\n  a: {max: true}\n", r"a.max: expected a number, found True"),
    ("duplicate metric", "m.json:\n  a: {min: 0}\n  a: {min: 1}\n", r"line 3: duplicate key 'a'"),
    ("alias", "m.json:\n  a: &r {min: 0}\n  b: *r\n", r"aliases"),
    ("path outside", "../../etc/passwd:\n  a: {min: 0}\n", r"expected a metrics file path inside the repository"),
    ("absolute path", "/etc/passwd:\n  a: {min: 0}\n", r"expected a metrics file path inside the repository"),
    ("malformed", "m.json: {a: [\n", r"thresholds.yaml: not valid YAML"),
    ("UTF-16", "m.json:\n  a: {min: 0}\n".encode("utf-16"), r"found UTF-16 \(byte-order mark\)"),
    ("latin-1", "m\xe9.json:\n  a: {min: 0}\n".encode("latin-1"), r"expected UTF-8 text, found byte 0xe9"),
    ("not a mapping", "- m.json\n", r"expected a mapping of metrics files to metrics"),
]


@pytest.mark.parametrize("data, message", [c[1:] for c in THRESHOLDS], ids=[c[0] for c in THRESHOLDS])
def test_bad_thresholds_are_one_clear_error(tmp_path, data, message):
    path = tmp_path / "thresholds.yaml"
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    with pytest.raises(ConfigError, match=message):
        load_thresholds(path)


@pytest.fixture
def gate_repo(tmp_path, monkeypatch):
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    (tmp_path / "m.json").write_text('{"a": 0.5, "nan": NaN, "huge": 1' + "0" * 400 + "}")
    (tmp_path / "thresholds.yaml").write_text("m.json:\n  a: {min: 0, max: 1, atol: 0.1}\n")
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "m"]):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, env={**os.environ, **env}, capture_output=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("rev", ["no-such-rev", "--output=/tmp/x", "HEAD~5", ""])
def test_an_unknown_baseline_revision_is_reported_once(gate_repo, rev, capsys):
    assert main(["check-metrics", f"--baseline={rev}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("error: --baseline: expected a git revision")
    assert not Path("/tmp/x").exists() or rev != "--output=/tmp/x"


def test_a_known_baseline_still_works(gate_repo, capsys):
    assert main(["check-metrics", "--baseline", "HEAD"]) == 0


@pytest.mark.parametrize("key", ["nan", "huge"])
def test_non_finite_metrics_fail_even_without_a_band(gate_repo, key):
    (check,) = run_checks(load_thresholds(gate_repo / "thresholds.yaml"), gate_repo, "HEAD")
    assert check.ok
    (gate_repo / "thresholds.yaml").write_text(f"m.json:\n  {key}: {{atol: 0.1}}\n")
    (check,) = run_checks(load_thresholds(gate_repo / "thresholds.yaml"), gate_repo, "HEAD")
    assert check.verdict == "FAIL: not finite"


def test_a_metrics_file_that_is_a_fifo_counts_as_missing(gate_repo):
    os.mkfifo(gate_repo / "fifo.json")
    (gate_repo / "thresholds.yaml").write_text("fifo.json:\n  a: {min: 0}\n")
    (check,) = run_checks(load_thresholds(gate_repo / "thresholds.yaml"), gate_repo)
    assert check.verdict == "FAIL: missing"  # and it did not block
