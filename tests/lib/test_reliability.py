"""Resumable checkpoints, kills during saves, bad checkpoints, divergence guards, bad data."""

import logging

import jax
import numpy as np
import pytest

from lstm_jax.io import load_checkpoint, count_steps
from lstm_jax.training import TrainCheckpointer, generate_text, train_model, init_params, make_optimizer
from lstm_jax.io._datasets import build_windows, source_text
from lstm_jax.errors import CheckpointError, LstmJaxError, TrainingDiverged
from lstm_jax.nn import CharLM

OPT = dict(learning_rate=0.01, schedule="cosine", final_lr_factor=0.1, clip_norm=1.0)
DS = build_windows("the quick brown fox jumps over the lazy dog. " * 8, seq_length=10, stride=1, heldout_fraction=0.2)
MODEL = CharLM(vocab_size=len(DS.vocab), embed_dim=8, hidden_size=16)


class Killed(Exception):
    """Stands in for SIGKILL: raised right after the n-th checkpoint is saved."""


class KillingCheckpointer(TrainCheckpointer):
    def __init__(self, *args, kill_after: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.saves, self.kill_after = 0, kill_after

    def save(self, state, progress):
        super().save(state, progress)
        self.saves += 1
        if self.saves == self.kill_after:
            raise Killed


def checkpointer(folder, cls=TrainCheckpointer, fingerprint="run", **kwargs):
    return cls(folder, every=7, fingerprint=fingerprint, model=MODEL, vocab=DS.vocab, optimizer={}, **kwargs)


def train(ckpt=None, epochs=3, optimizer=OPT, seed=0):
    tx = make_optimizer(total_steps=count_steps(len(DS.train), 8, epochs), **optimizer)
    return train_model(
        MODEL,
        init_params(MODEL, jax.random.key(seed)),
        DS.train,
        DS.heldout,
        tx=tx,
        epochs=epochs,
        batch_size=8,
        eval_batch_size=32,
        key=jax.random.key(1),
        checkpointer=ckpt,
    )


def leaves(params):
    return [np.asarray(x) for x in jax.tree.leaves(params)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    state, history, final, *_ = train(checkpointer(tmp_path_factory.mktemp("ref")))
    return state, history, final


def test_resume_after_a_kill_is_bitwise_equal_to_an_uninterrupted_run(tmp_path, reference, caplog):
    caplog.set_level(logging.INFO, logger="lstm_jax")
    ref_state, ref_history, ref_final = reference
    with pytest.raises(Killed):
        train(checkpointer(tmp_path, KillingCheckpointer, kill_after=5))  # dies mid-epoch 2
    assert [p.name for p in sorted(tmp_path.glob("step_*"))] == ["step_00000028", "step_00000035"]
    state, history, final, *_ = train(checkpointer(tmp_path))
    assert "train: resumed from" in caplog.text
    assert history == ref_history and final == ref_final
    assert all(np.array_equal(a, b) for a, b in zip(leaves(state.params), leaves(ref_state.params)))
    assert int(state.step) == int(ref_state.step)
    # A finished run leaves no step checkpoints: a forced rerun starts from scratch.
    assert not list(tmp_path.glob("step_*")) and (tmp_path / "finished.json").is_file()


def test_finished_json_depends_on_the_run_not_on_the_library_code(tmp_path, monkeypatch):
    """DVC tracks the finished folder: a docstring edit of the library (which changes the code
    fingerprint that step checkpoints carry) must leave it byte for byte the same, while another
    run's params or data must not."""
    from lstm_jax.training import _resume as resume

    def finished(folder, code, fingerprint="run"):
        monkeypatch.setattr(resume, "code_fingerprint", lambda: code)
        checkpointer(tmp_path / folder, fingerprint=fingerprint).finish()
        return (tmp_path / folder / "finished.json").read_bytes()

    assert finished("a", "code1") == finished("b", "code2")
    assert finished("c", "code1") != finished("d", "code1", fingerprint="other run")


def test_kill_during_a_save_leaves_a_temp_folder_that_is_ignored_and_cleaned(tmp_path, reference):
    with pytest.raises(Killed):
        train(checkpointer(tmp_path, KillingCheckpointer, kill_after=2))
    # What a save killed before its rename leaves behind: a hidden, half-written temp folder.
    leftover = tmp_path / ".step_00000021.abc123.tmp"
    leftover.mkdir()
    (leftover / "params.msgpack").write_bytes(b"\x81\xa5half")
    ckpt = checkpointer(tmp_path)
    assert ckpt.latest().name == "step_00000014"
    state, history, *_ = train(ckpt)  # resumes from step 14, and its saves succeed
    assert history == reference[1] and not leftover.exists()


def test_unloadable_latest_checkpoint_falls_back_to_the_one_before(tmp_path, caplog):
    with pytest.raises(Killed):
        train(checkpointer(tmp_path, KillingCheckpointer, kill_after=3))
    newest = tmp_path / "step_00000021"
    data = (newest / "params.msgpack").read_bytes()
    (newest / "params.msgpack").write_bytes(data[: len(data) // 2])  # truncated
    ckpt = checkpointer(tmp_path)
    state, progress = ckpt.restore(train_state_template())
    assert int(state.step) == 14 and progress["batch"] == 14
    assert "skipping unusable checkpoint" in caplog.text


def train_state_template():
    from lstm_jax.training._step import create_train_state

    return create_train_state(MODEL, init_params(MODEL, jax.random.key(0)), make_optimizer(total_steps=100, **OPT))


def test_checkpoints_of_another_run_are_ignored_then_removed(tmp_path):
    with pytest.raises(Killed):
        train(checkpointer(tmp_path, KillingCheckpointer, kill_after=2, fingerprint="other params"))
    assert checkpointer(tmp_path).latest() is None
    with pytest.raises(Killed):
        train(checkpointer(tmp_path, KillingCheckpointer, kill_after=1))
    assert [p.name for p in tmp_path.glob("step_*")] == ["step_00000007"]


def test_missing_optimizer_state_when_resuming_is_a_clear_error(tmp_path):
    with pytest.raises(Killed):
        train(checkpointer(tmp_path, KillingCheckpointer, kill_after=1))
    (tmp_path / "step_00000007" / "opt_state.msgpack").unlink()
    with pytest.raises(CheckpointError, match=r"step_00000007: no optimizer state \(opt_state.msgpack\)"):
        checkpointer(tmp_path).restore(train_state_template())


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "params.msgpack").write_bytes((d / "params.msgpack").read_bytes()[:100]), "corrupted file"),
        (lambda d: (d / "params.msgpack").write_bytes(b"not msgpack at all"), "corrupted file"),
        (lambda d: (d / "config.json").write_text("{"), "corrupted checkpoint config"),
        (lambda d: (d / "params.msgpack").unlink(), "params.msgpack: file not found"),
    ],
)
def test_damaged_checkpoints_give_one_clear_error(tmp_path, damage, message):
    from lstm_jax.io import save_checkpoint

    save_checkpoint(tmp_path / "ckpt", model=MODEL, params=init_params(MODEL, jax.random.key(0)), vocab=DS.vocab)
    damage(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "ckpt")


def test_absurd_learning_rate_stops_within_a_few_steps_and_is_never_saved(tmp_path):
    absurd = dict(learning_rate=1e3, schedule="constant", clip_norm=1.0)
    with pytest.raises(TrainingDiverged, match=r"train: step [2-5] \(epoch 1\): loss exploded"):
        train(checkpointer(tmp_path), optimizer=absurd)
    assert not list(tmp_path.glob("step_*"))


def test_non_finite_parameters_stop_at_the_first_step(tmp_path):
    params = init_params(MODEL, jax.random.key(0))
    params["head"]["bias"] = params["head"]["bias"].at[0].set(np.nan)
    with pytest.raises(TrainingDiverged, match=r"step 1 \(epoch 1\): loss is NaN or infinite"):
        train_model(
            MODEL,
            params,
            DS.train,
            DS.heldout,
            tx=make_optimizer(total_steps=1, **OPT),
            epochs=1,
            batch_size=8,
            eval_batch_size=32,
            key=jax.random.key(1),
            checkpointer=checkpointer(tmp_path),
        )
    assert not list(tmp_path.glob("step_*"))


def test_a_different_seed_gives_different_metrics(reference):
    _, _, final, *_ = train(seed=5)
    assert final != reference[2]


def test_bad_text_files(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(LstmJaxError, match="empty.txt: expected some text, found an empty file"):
        source_text(None, 1, "", tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(LstmJaxError, match="latin1.txt: expected UTF-8 text, found a non-UTF-8 byte at offset 3"):
        source_text(None, 1, "", tmp_path / "latin1.txt")
    with pytest.raises(LstmJaxError, match="expected at least 22 characters .* found 15"):
        build_windows("too short text.", seq_length=10, stride=1, heldout_fraction=0.1)


def test_unknown_characters_at_generation_become_unk(reference):
    state = reference[0]
    assert DS.vocab.encode("Z\u00e9")[0] == 1  # UNK
    text = generate_text(MODEL, state.params, DS.vocab, "the Zebra \u00e9", 10)
    assert len(text) == 10
