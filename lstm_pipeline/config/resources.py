"""Resource bounds of a params file, checked before any stage allocates anything: the memory a
run would need (`lstm_jax.limits` estimates, against physical RAM) and its int32 step counters."""

from __future__ import annotations

import typing
from pathlib import Path

from lstm_jax.io import CHUNK_CHARS, scan, count_steps, window_counts
from lstm_jax.errors import ConfigError
from lstm_jax.limits import MAX_GENERATE_LENGTH, char_lm_bytes, check_memory, check_steps, classifier_bytes

if typing.TYPE_CHECKING:
    from lstm_pipeline.config.params import Params


def epochs_of(run) -> typing.Callable[[int], int]:
    """n_windows -> epochs of a run section (a step budget where the section has one)."""
    return getattr(run, "epochs_for", lambda _: run.epochs)


def check_resources(params: Params, source: str, root: Path) -> None:
    """Bound what a run would allocate (lstm_jax.limits estimates) and its int32 step counters,
    before any stage allocates it: one ConfigError naming the section and its sizes."""
    p, chars, charset = params.prepare, {}, {}
    for name, text in p.texts.items():
        if text.text is not None:
            chars[name] = min(text.inline_length(), text.max_characters or text.inline_length())
            charset[name] = set(text.text) | set(text.separator)
        else:
            vocab, chars[name] = scan(text.chunks(root))  # streamed: one pass, the text held once as ids
            charset[name] = set(vocab.tokens[2:])
        # The ids (int32) and the chunk being encoded (UTF-32, int64, positions): windows are views.
        need = 4 * chars[name] + 40 * CHUNK_CHARS
        check_memory(need, f"{source}: prepare.texts.{name}", f"encoding its {chars[name]} characters")
    for section, run, datasets in (
        ("train", params.train, [params.train.dataset]),
        ("tutorial", params.tutorial, [params.tutorial.dataset]),
        ("transfer", params.transfer, [params.tutorial.dataset, params.transfer.dataset]),
    ):
        model = getattr(run, "model", params.tutorial.model)
        vocab = 2 + len(set().union(*(charset[d] for d in datasets)))
        stride = p.stride_of(run.dataset)
        train, heldout = window_counts(chars[run.dataset], p.seq_length, stride, p.heldout_fraction)
        epochs = epochs_of(run)(train)
        check_steps(count_steps(train, run.batch_size, epochs), f"{source}: {section}.epochs")
        sizes = dict(vocab=vocab, embed=model.embed_dim, hidden=model.hidden_size, layers=model.num_layers)
        runs = dict(batch=run.batch_size, eval_batch=run.eval_batch_size)
        need = char_lm_bytes(**sizes, **runs, seq_length=p.seq_length, train_windows=train, heldout_windows=heldout)
        check_memory(need, f"{source}: {section}", f"training a CharLM with {sizes} and {runs} on {train} windows")
    alpha = params.alphabet
    for name, f in alpha.framings.items():
        n, where = alpha.patterns_count(f.kind), f"{source}: alphabet.framings.{name}"
        sizes = dict(runs=2 * alpha.seeds, patterns=n, steps=max(alpha.window, alpha.max_length), features=alpha.window)
        need = classifier_bytes(**sizes, hidden=f.hidden_size, classes=26, batch=f.batch_size, epochs=f.epochs)
        what = f"training {sizes['runs']} runs of hidden_size {f.hidden_size} on {n} patterns for {f.epochs} epochs"
        check_memory(need, where, what)
        check_steps(f.epochs * (n // f.batch_size), f"{where}.epochs")
    s = params.sequential
    n = 2 * s.datasets * (s.train_size + s.test_size)  # every dataset, then all of them joined
    need = classifier_bytes(
        runs=1, patterns=n, steps=s.max_length, features=s.features, hidden=s.hidden_size, classes=2,
        batch=s.batch_size, epochs=s.epochs * s.datasets,
    )  # fmt: skip
    what = f"training on {n // 2} sequences of {s.features} features for {s.epochs} epochs each"
    check_memory(need, f"{source}: sequential", what)
    check_steps(s.datasets * s.epochs * (s.train_size // s.batch_size), f"{source}: sequential.epochs")
    if params.reload.length > MAX_GENERATE_LENGTH:
        raise ConfigError(
            f"{source}: reload.length: expected at most {MAX_GENERATE_LENGTH} characters, found {params.reload.length}"
        )
