"""Save and restore a model: weights, model config, vocabulary and optimizer state, strictly.

A checkpoint is a folder:
  config.json         {"format", "model": {"name", "kwargs"}, "vocab": [...], "optimizer", "metadata"}
  params.msgpack      flax-serialized parameter tree
  opt_state.msgpack   flax-serialized optax state (optional)

The folder is written beside its final place and renamed into it, so a crash never leaves a
half-written checkpoint. On restore every array is checked against the shape the model
expects (flax serialization alone does not check shapes, flax#2436); any mismatch, missing or
extra key is one `CheckpointError` naming the file, the key, and expected against found.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import flax.linen as nn
import jax
import numpy as np
from flax import serialization
from flax.traverse_util import flatten_dict

from lstm_jax.errors import CheckpointError, LstmJaxError
from lstm_jax.outputs import umask
from lstm_jax.models import build_model, dummy_tokens, model_config
from lstm_jax.vocab import Vocabulary

FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    model: nn.Module
    params: dict
    vocab: Vocabulary
    config: dict  # the parsed config.json


def save_checkpoint(folder: str | Path, *, model: nn.Module, params, vocab: Vocabulary,
                    opt_state=None, optimizer: dict | None = None, metadata: dict | None = None) -> None:
    """Write a checkpoint folder atomically (replacing any folder already there)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, "model": model_config(model), "vocab": list(vocab.tokens),
              "optimizer": optimizer, "metadata": metadata or {}}
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp creates 0700
        (tmp / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", "utf-8")
        (tmp / "params.msgpack").write_bytes(serialization.to_bytes(jax.device_get(params)))
        if opt_state is not None:
            (tmp / "opt_state.msgpack").write_bytes(serialization.to_bytes(jax.device_get(opt_state)))
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint config not found (is {folder} a checkpoint folder?)")
    try:
        config = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupted checkpoint config ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(f"{path}: expected checkpoint format {FORMAT}, found {found!r}")
    return config


def _describe(x) -> str:
    return f"{np.dtype(x.dtype).name}{list(x.shape)}"


def restore_tree(path: Path, template):
    """Restore a serialized pytree into the structure and shapes of `template`, or raise."""
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        raw = serialization.msgpack_restore(path.read_bytes())
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise CheckpointError(f"{path}: corrupted file, cannot be decoded ({type(exc).__name__})") from None
    expected = serialization.to_state_dict(template)
    flat_exp = flatten_dict(expected, sep="/") if isinstance(expected, dict) else {"": expected}
    flat_raw = flatten_dict(raw, sep="/") if isinstance(raw, dict) else {"": raw}
    missing = sorted(set(flat_exp) - set(flat_raw))
    extra = sorted(set(flat_raw) - set(flat_exp))
    if missing or extra:
        raise CheckpointError(f"{path}: keys do not fit the model: missing {missing[:5]}, unexpected {extra[:5]}")
    for key, exp in flat_exp.items():
        found = flat_raw[key]
        if not hasattr(exp, "shape"):
            continue
        if not hasattr(found, "shape") or found.shape != exp.shape or np.dtype(found.dtype) != np.dtype(exp.dtype):
            found_s = _describe(found) if hasattr(found, "shape") else repr(found)
            raise CheckpointError(f"{path}: '{key}': expected {_describe(exp)}, found {found_s}")
    return serialization.from_state_dict(template, raw)


def load_checkpoint(folder: str | Path) -> Checkpoint:
    """Rebuild the model from config.json alone and restore its parameters, strictly."""
    folder = Path(folder)
    config = _read_config(folder)
    try:
        vocab = Vocabulary.from_list(config["vocab"], f"{folder / 'config.json'}: vocab")
        model = build_model(config["model"]["name"], config["model"]["kwargs"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{folder / 'config.json'}: missing or malformed entry {exc}") from None
    except LstmJaxError as exc:
        raise CheckpointError(f"{folder / 'config.json'}: {exc}") from None
    if getattr(model, "vocab_size", len(vocab)) != len(vocab):
        raise CheckpointError(f"{folder / 'config.json'}: model vocab_size {model.vocab_size} "
                              f"does not match the {len(vocab)}-token vocabulary")
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), dummy_tokens()))["params"]
    params = restore_tree(folder / "params.msgpack", shapes)
    return Checkpoint(model=model, params=jax.tree.map(np.asarray, params), vocab=vocab, config=config)


def restore_opt_state(folder: str | Path, template):
    """The optimizer state saved in `folder`, checked against `template` (e.g. `tx.init(params)`)."""
    return restore_tree(Path(folder) / "opt_state.msgpack", jax.eval_shape(lambda: template))
