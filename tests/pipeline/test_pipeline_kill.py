"""A train stage SIGKILLed mid-run resumes on the next `dvc repro`, bitwise equal to an
uninterrupted run, without touching dvc.lock; two `dvc repro` at once do not corrupt anything."""

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from test_pipeline import dvc, make_repo, tiny_params


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    params = tiny_params()
    # Long enough (~1000 steps) to be killed between two checkpoints.
    params["train"].update(epochs=40, checkpoint_every=25)
    params["train"]["model"].update(hidden_size=128)
    return make_repo(tmp_path_factory.mktemp("kill"), params)


def start(repo, env, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "dvc", *args],
        cwd=repo,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_repros_at_once_and_a_killed_train_stage_resumes(repo):
    repo, env = repo
    # Reference: an uninterrupted run; a second `dvc repro` started meanwhile fails cleanly.
    first = start(repo, env, "repro", "train")
    time.sleep(3)
    second = dvc(repo, env, "repro", "train", check=False)
    assert second.returncode != 0 and "lock" in (second.stdout + second.stderr).lower()
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, out + err
    reference = {p: (repo / p).read_bytes() for p in ("metrics/train.json", "models/char/params.msgpack")}
    lock = (repo / "dvc.lock").read_bytes()
    assert "up to date" in dvc(repo, env, "status", "train").stdout

    # Kill a forced rerun once it has written a checkpoint.
    run = start(repo, env, "repro", "--force", "train")
    deadline = time.time() + 300
    while not list((repo / "checkpoints/train").glob("step_*")):
        assert run.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL
    assert (repo / "dvc.lock").read_bytes() == lock

    resumed = dvc(repo, env, "repro", "train")
    assert "train: resumed from checkpoints/train at step" in resumed.stdout
    assert {p: (repo / p).read_bytes() for p in reference} == reference
    assert (repo / "dvc.lock").read_bytes() == lock
    assert yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train"]
