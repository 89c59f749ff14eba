"""Train step, epoch scan, evaluation, transfer of vocab rows, and compiled generation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax.io import count_steps, Vocabulary
from lstm_jax.io._datasets import build_windows
from lstm_jax.training import generate_text, Evaluator, train_model, init_params, make_optimizer, train_step
from lstm_jax.training._generate import sample_logits
from lstm_jax.nn import CharLM, remap_vocab_params, with_vocab_size
from lstm_jax.training._step import split_window, create_train_state, make_schedule

OPT = dict(learning_rate=0.01, schedule="cosine", final_lr_factor=0.1, clip_norm=1.0)


def tx(ds, batch_size, epochs):
    return make_optimizer(total_steps=count_steps(len(ds.train), batch_size, epochs), **OPT)


@pytest.fixture(scope="module")
def tiny():
    ds = build_windows("abcdefgh " * 30, seq_length=8, stride=1, heldout_fraction=0.2)
    model = CharLM(vocab_size=len(ds.vocab), embed_dim=8, hidden_size=16)
    return ds, model


def test_train_step_changes_every_parameter(tiny):
    ds, model = tiny
    params = init_params(model, jax.random.key(0))
    state = create_train_state(model, params, make_optimizer(total_steps=10, **OPT))
    new_state, metrics = jax.jit(train_step)(state, split_window(jnp.asarray(ds.train[:4])))
    assert float(metrics.sums.count) == 4 * 8 and float(metrics.grad_norm) > 0
    for path, before in jax.tree_util.tree_leaves_with_path(params):
        after = new_state.params
        for key in path:
            after = after[key.key]
        assert not np.array_equal(before, after), f"{jax.tree_util.keystr(path)} did not change"


def train_tiny(ds, model):
    return train_model(
        model,
        init_params(model, jax.random.key(0)),
        ds.train,
        ds.heldout,
        tx=tx(ds, 16, 8),
        epochs=8,
        batch_size=16,
        eval_batch_size=32,
        key=jax.random.key(1),
    )


@pytest.fixture(scope="module")
def trained(tiny):
    return train_tiny(*tiny)


def test_training_learns_a_periodic_text_and_is_deterministic(tiny, trained):
    again = train_tiny(*tiny)
    assert trained.history[-1]["train_loss"] < 0.5 * trained.history[0]["train_loss"]
    assert trained.final["heldout_accuracy"] > 0.9
    assert (trained.history, trained.final) == (again.history, again.final)  # bitwise-identical floats


def test_evaluator_counts_every_window_once_despite_padding(tiny):
    ds, model = tiny
    params = init_params(model, jax.random.key(0))
    logits = Evaluator(model.apply, 7).predict(params, ds.heldout)
    assert logits.shape == (ds.heldout.shape[0], 8, len(ds.vocab))
    # Manual loss over all windows in one call equals the padded, batched evaluation.
    direct, _ = model.apply({"params": params}, ds.heldout[:, :-1])
    logp = jax.nn.log_softmax(direct)
    manual = -np.mean(np.take_along_axis(np.asarray(logp), ds.heldout[:, 1:, None], -1))
    np.testing.assert_allclose(Evaluator(model.apply, 7).metrics(params, ds.heldout)["loss"], manual, rtol=1e-5)


def test_schedule_ends_at_final_factor():
    sched = make_schedule(0.01, 100, schedule="cosine", final_lr_factor=0.1)
    assert float(sched(0)) == pytest.approx(0.01)
    assert float(sched(100)) == pytest.approx(0.001)
    warm = make_schedule(0.01, 110, schedule="exponential", warmup_steps=10, final_lr_factor=0.5)
    assert float(warm(0)) == 0.0 and float(warm(10)) == pytest.approx(0.01)
    assert float(warm(110)) == pytest.approx(0.005)


def test_vocab_transfer_keeps_predictions_for_known_characters(tiny):
    ds, model = tiny
    params = init_params(model, jax.random.key(0))
    new_vocab = ds.vocab.union(Vocabulary.from_text("xyz"))
    new_model = with_vocab_size(model, len(new_vocab))
    moved = remap_vocab_params(params, ds.vocab, new_vocab, init_params(new_model, jax.random.key(5)))
    tokens = ds.heldout[:3, :-1]  # ids of known characters are unchanged by the union
    old_logits, _ = model.apply({"params": params}, tokens)
    new_logits, _ = new_model.apply({"params": moved}, tokens)
    np.testing.assert_allclose(new_logits[..., : len(ds.vocab)], old_logits, atol=1e-6)


def test_sampling_greedy_top_k_and_never_pad():
    logits = jnp.array([[5.0, 1.0, 2.0, 3.0]])
    assert int(sample_logits(logits, jax.random.key(0))[0]) == 3  # PAD (id 0) is never chosen
    draws = {int(sample_logits(logits, jax.random.key(i), 1.0, top_k=2)[0]) for i in range(50)}
    assert draws == {2, 3}


def test_generation_is_greedy_continuation_of_learned_text(tiny, trained):
    ds, model = tiny
    state = trained.state
    text = generate_text(model, state.params, ds.vocab, "abcd", 14)
    assert text == "efgh abcdefgh "
