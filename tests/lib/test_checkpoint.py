"""Save -> restore round trips, and strict errors for checkpoints that do not fit."""

import json

import jax
import numpy as np
import pytest

from lstm_jax.io import load_checkpoint, save_checkpoint, Vocabulary
from lstm_jax.io._checkpoint import restore_opt_state
from lstm_jax.errors import CheckpointError
from lstm_jax.nn import CharLM
from lstm_jax.training import init_params, make_optimizer

OPT = dict(learning_rate=1e-3, schedule="constant", clip_norm=1.0)


@pytest.fixture
def saved(tmp_path):
    vocab = Vocabulary.from_text("hello world")
    model = CharLM(vocab_size=len(vocab), embed_dim=4, hidden_size=8)
    params = init_params(model, jax.random.key(0))
    tx = make_optimizer(total_steps=10, **OPT)
    opt_state = tx.init(params)
    # A non-trivial optimizer state: one update step.
    grads = jax.tree.map(np.ones_like, params)
    _, opt_state = tx.update(grads, opt_state, params)
    folder = tmp_path / "ckpt"
    save_checkpoint(
        folder,
        model=model,
        params=params,
        vocab=vocab,
        opt_state=opt_state,
        optimizer={"config": OPT, "total_steps": 10},
        metadata={"note": "x"},
    )
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
    del config["integrity"]  # as saved before checkpoints recorded hashes (else: the hash differs)
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
    template = make_optimizer(total_steps=10, **OPT).init(init_params(other, jax.random.key(0)))
    with pytest.raises(CheckpointError, match="opt_state.msgpack"):
        restore_opt_state(folder, template)


def test_every_model_round_trips_with_identical_predictions(tmp_path):
    from lstm_jax.nn import SequenceClassifier
    from lstm_jax.nn import Forecaster
    from lstm_jax.nn._models import MODELS

    vocab = Vocabulary.from_text("abc")
    x = np.random.default_rng(0).normal(size=(5, 7, 3)).astype(np.float32)
    mask = np.arange(7)[None, :] < np.array([7, 3, 5, 1, 6])[:, None]
    cases = {
        "CharLM": (
            CharLM(vocab_size=len(vocab), embed_dim=4, hidden_size=8, num_layers=2),
            vocab.encode("abcabca")[None],
        ),
        "SequenceClassifier": (SequenceClassifier(num_classes=4, hidden_size=6, num_layers=2, features=3), x),
        "Forecaster": (Forecaster(features=3, horizon=2, hidden_size=5, num_layers=2), x),
    }
    assert set(cases) == set(MODELS), "a model was added: add it to this round trip"
    for name, (model, inputs) in cases.items():
        params = init_params(model, jax.random.key(1))
        save_checkpoint(tmp_path / name, model=model, params=params, vocab=vocab)
        ckpt = load_checkpoint(tmp_path / name)
        kwargs = {"mask": mask} if name == "SequenceClassifier" else {}
        before, _ = model.apply({"params": params}, inputs, **kwargs)
        after, _ = ckpt.model.apply({"params": ckpt.params}, inputs, **kwargs)
        assert ckpt.model == model and np.asarray(before).tobytes() == np.asarray(after).tobytes(), name


def test_a_model_that_cannot_be_rebuilt_is_not_saved(tmp_path):
    from lstm_jax.nn import SequenceClassifier

    model = SequenceClassifier(num_classes=2, hidden_size=4)  # no `features`: shapes unknown at load time
    params = model.init(jax.random.key(0), np.zeros((1, 3, 5), np.float32))["params"]
    with pytest.raises(CheckpointError, match=r"clf: .*SequenceClassifier.features: expected the number of input"):
        save_checkpoint(tmp_path / "clf", model=model, params=params, vocab=Vocabulary.from_text(""))
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_the_fingerprint_covers_all_training_code_and_nothing_else():
    """Every library module that the epoch loop (through it the train step), the models, the
    checkpoints and the resumer import, directly or not, is in TRAINING_CODE, so a change to any
    of them voids resumable checkpoints; the command line,
    generation and the pipeline are not, so changing them keeps checkpoints resumable."""
    import ast
    from pathlib import Path

    from lstm_jax.training._resume import TRAINING_CODE

    folder = Path(__file__).resolve().parents[2] / "lstm_jax"

    def module_files(module: str, names) -> list[str]:
        """The files under lstm_jax/ that `from module import names` reads."""
        parts = module.split(".")[1:]
        if (folder / "/".join(parts)).with_suffix(".py").is_file():
            return ["/".join(parts) + ".py"]
        package = "/".join(parts)
        found = [f"{package}/{n}.py".lstrip("/") for n in names if (folder / package / f"{n}.py").is_file()]
        return found or [f"{package}/__init__.py".lstrip("/")]

    def deps(name, seen):
        if name in seen:
            return seen
        seen.add(name)
        for node in ast.walk(ast.parse((folder / name).read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lstm_jax"):
                for file in module_files(node.module, [a.name for a in node.names]):
                    deps(file, seen)
        return seen

    needed = set()
    for start in ("training/_fit.py", "nn/_models.py", "io/_checkpoint.py", "training/_resume.py"):
        needed |= deps(start, set())
    assert "recurrence/_native.py" in needed and "training/_step.py" in needed  # the walk follows imports
    assert needed <= set(TRAINING_CODE), sorted(needed - set(TRAINING_CODE))
    assert not {"cli.py", "training/_generate.py", "io/_torch.py", "training/_parallel.py"} & set(TRAINING_CODE)
