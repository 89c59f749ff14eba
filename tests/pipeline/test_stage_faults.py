"""Issue 17, kinds 2 and 3: a stage cannot outlive the process that started it (so an orphan
of a killed `dvc repro` cannot race the next run), and every pipeline training loop stops on
divergence with one TrainingDiverged line, exit 2 and nothing written."""

import copy
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from lstm_jax.errors import TrainingDiverged
from lstm_pipeline.experiments import run_sequential
from lstm_pipeline.config.params import parse_params

ROOT = Path(__file__).resolve().parents[2]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())

STAGE = """
import os, sys, time
from pathlib import Path
from lstm_pipeline.stage import run_stage

def arguments(parser):
    parser.add_argument("--marker", type=Path, required=True)

def main(params, args):
    args.marker.write_text(str(os.getpid()))
    while True:  # a long training run
        time.sleep(0.05)

run_stage(main, "a stage that runs until stopped", arguments)
"""


def dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")  # a zombie has ended; its new parent may not reap it


@pytest.mark.parametrize("through_shell", [False, True], ids=["direct", "through a shell"])
def test_a_stage_stops_when_the_process_that_started_it_is_killed(tmp_path, through_shell):
    script, marker, err = tmp_path / "stage.py", tmp_path / "pid", tmp_path / "stderr"
    script.write_text(STAGE)
    argv = [sys.executable, str(script), "--params", str(ROOT / "params.yaml"), "--marker", str(marker)]
    if through_shell:  # `; true` keeps bash from exec'ing: the stage's parent is bash, dvc its grandparent
        argv = ["bash", "-c", " ".join(argv) + "; true"]
    launcher = textwrap.dedent(f"""
        import subprocess, time
        subprocess.Popen({argv!r}, stderr=open({str(err)!r}, "w"))
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", launcher], start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (marker.exists() and marker.read_text()):
            assert time.time() < deadline and parent.poll() is None, "the stage did not start"
            time.sleep(0.1)
        pid = int(marker.read_text())
        parent.kill()  # SIGKILL to the parent alone, as `kill -9 <dvc pid>`
        parent.wait()
        deadline = time.time() + 15
        while not dead(pid):
            assert time.time() < deadline, "the stage outlived its parent"
            time.sleep(0.1)
        lines = err.read_text().strip().splitlines()
        assert lines and lines[0].startswith("error: the process that started this stage (pid ")
        assert len(lines) == 1, lines
    finally:
        try:
            os.killpg(parent.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def tiny_alphabet(**changes) -> dict:
    raw = copy.deepcopy(RAW)
    raw["alphabet"].update(seeds=1, samples=40, **changes)
    framing = {"kind": "one_char", "hidden_size": 8, "epochs": 3, "batch_size": 5, "shuffle": True}
    raw["alphabet"]["framings"] = {"one_char": framing}
    return raw


def test_an_exploding_alphabet_framing_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_alphabet(learning_rate=1e30)))
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages/alphabet.py"), "--framing", "one_char"]
        + ["--metrics", "metrics/one_char.json", "--plot", "plots/one_char.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: alphabet.framings.one_char: plain alphabet, seed 0: epoch 1: loss ")
    assert line.endswith("lower alphabet.learning_rate. Nothing was written")
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written in (["params.yaml"], [".jax_cache", "params.yaml"])  # no metrics, no plots


def test_an_exploding_sequential_run_raises_training_diverged():
    raw = copy.deepcopy(RAW)
    raw["sequential"].update(train_size=64, test_size=32, epochs=2, batch_size=16, hidden_size=8, learning_rate=1e30)
    params = parse_params(raw, ROOT)
    with pytest.raises(TrainingDiverged, match=r"sequential: dataset 0: epoch 1: loss .* lower sequential.learning"):
        run_sequential(params.sequential)


@pytest.mark.parametrize("content", [b"{", b"\xff\xfe{}", b'{"a": 1' + b"0" * 5000 + b"}"], ids=["cut", "utf16", "int"])
def test_a_damaged_stage_input_is_one_clear_error(tmp_path, content):
    from lstm_jax.errors import DataError
    from lstm_pipeline.stage import read_json

    (tmp_path / "m.json").write_bytes(content)
    with pytest.raises(DataError, match=r"m.json: expected JSON, found a damaged file .*; rerun its stage"):
        read_json(tmp_path / "m.json")
