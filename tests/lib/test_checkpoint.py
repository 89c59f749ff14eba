"""Save -> restore round trips, and strict errors for checkpoints that do not fit."""

import json

import jax
import numpy as np
import pytest

from lstm_jax.checkpoint import load_checkpoint, restore_opt_state, save_checkpoint
from lstm_jax.config import OptimizerConfig
from lstm_jax.errors import CheckpointError
from lstm_jax.models import CharLM
from lstm_jax.train import init_params, make_optimizer, optimizer_record
from lstm_jax.vocab import Vocabulary

OPT = OptimizerConfig(learning_rate=1e-3, schedule="constant", warmup_steps=0, final_lr_factor=1.0, clip_norm=1.0)


@pytest.fixture
def saved(tmp_path):
    vocab = Vocabulary.from_text("hello world")
    model = CharLM(vocab_size=len(vocab), embed_dim=4, hidden_size=8)
    params = init_params(model, jax.random.key(0))
    tx = make_optimizer(OPT, 10)
    opt_state = tx.init(params)
    # A non-trivial optimizer state: one update step.
    grads = jax.tree.map(np.ones_like, params)
    _, opt_state = tx.update(grads, opt_state, params)
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, model=model, params=params, vocab=vocab, opt_state=opt_state,
                    optimizer=optimizer_record(OPT, 10), metadata={"note": "x"})
    return folder, model, params, vocab, tx, opt_state


def test_round_trip_gives_identical_predictions(saved):
    folder, model, params, vocab, tx, opt_state = saved
    ckpt = load_checkpoint(folder)
    assert ckpt.model == model and ckpt.vocab == vocab and ckpt.config["metadata"] == {"note": "x"}
    tokens = vocab.encode("hello world")[None]
    before, _ = model.apply({"params": params}, tokens)
    after, _ = ckpt.model.apply({"params": ckpt.params}, tokens)
    assert np.asarray(before).tobytes() == np.asarray(after).tobytes()
    restored = restore_opt_state(folder, tx.init(ckpt.params))
    for a, b in zip(jax.tree.leaves(opt_state), jax.tree.leaves(restored)):
        np.testing.assert_array_equal(a, b)
    assert not list(folder.parent.glob(".*tmp")), "temporary folder left behind"


def test_saving_over_an_existing_checkpoint_replaces_it(saved):
    folder, model, params, vocab, *_ = saved
    params2 = jax.tree.map(lambda a: a + 1.0, params)
    save_checkpoint(folder, model=model, params=params2, vocab=vocab)
    np.testing.assert_array_equal(load_checkpoint(folder).params["head"]["bias"], params2["head"]["bias"])
    assert not (folder / "opt_state.msgpack").exists()


def test_shape_mismatch_is_a_clear_error_not_a_partial_load(saved):
    folder, *_ = saved
    config = json.loads((folder / "config.json").read_text())
    config["model"]["kwargs"]["hidden_size"] = 16
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"params.msgpack: '.*': expected float32\[.*16.*\], found float32\[.*8"):
        load_checkpoint(folder)


def test_missing_and_corrupted_files(saved, tmp_path):
    folder, *_ = saved
    with pytest.raises(CheckpointError, match="config.json: checkpoint config not found"):
        load_checkpoint(tmp_path / "nowhere")
    (folder / "params.msgpack").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="params.msgpack: corrupted file"):
        load_checkpoint(folder)


def test_optimizer_state_must_fit(saved):
    folder, *_ = saved
    other = CharLM(vocab_size=5, embed_dim=4, hidden_size=8)
    template = make_optimizer(OPT, 10).init(init_params(other, jax.random.key(0)))
    with pytest.raises(CheckpointError, match="opt_state.msgpack"):
        restore_opt_state(folder, template)
