"""Save and restore a model: weights, model config, vocabulary and optimizer state, strictly.

A checkpoint is a folder:
  config.json         {"format", "model": {"name", "kwargs"}, "vocab": [...], "optimizer", "metadata"}
  params.msgpack      flax-serialized parameter tree
  opt_state.msgpack   flax-serialized optax state (optional)

config.json records the size and SHA-256 of each .msgpack file and a SHA-256 of its own other
entries ("integrity"); `load_checkpoint` verifies them before decoding anything, so a flipped
byte, a truncated file or another checkpoint's params.msgpack of the same shapes is a
`CheckpointError`, and sizes in config.json that no stored parameters could fit (a crafted
`num_layers: 100000`) are refused before the model is built. Checkpoints written before these
hashes existed still load, with a warning that they cannot be verified.

The folder is written beside its final place and renamed into it, so a crash never leaves a
half-written checkpoint. On restore every array is checked against the shape the model
expects (flax serialization alone does not check shapes, flax#2436); any mismatch, missing or
extra key is one `CheckpointError` naming the file, the key, and expected against found.
"""

from __future__ import annotations

import hashlib
import json
import logging
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
from lstm_jax.limits import memory_limit
from lstm_jax.nn._models import build_model, model_config
from lstm_jax.io._outputs import UMASK, fsync_dir
from lstm_jax.portability import platform_record
from lstm_jax.io._safe_paths import read_regular_file
from lstm_jax.io._vocab import Vocabulary

FORMAT = 1
CONFIG_MAX_BYTES = 64 << 20  # config.json holds a vocabulary and metadata: megabytes at most
MAX_LAYERS = 1024  # num_layers beyond this is refused before a model is built (tracing is linear in it)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    model: nn.Module
    params: dict
    vocab: Vocabulary
    config: dict  # the parsed config.json


def save_checkpoint(
    folder: str | Path,
    *,
    model: nn.Module,
    params,
    vocab: Vocabulary,
    opt_state=None,
    optimizer: dict | None = None,
    metadata: dict | None = None,
    extra_trees: dict | None = None,
) -> None:
    """Write a checkpoint folder atomically (replacing any folder already there).

    `extra_trees` {"name.msgpack": pytree} are stored (and hashed) beside params.msgpack, e.g.
    the best epoch's parameters of a run that is still training.

    `model` must be rebuildable from its fields alone (`load_checkpoint` calls its
    `example_input()` to learn the parameter shapes); otherwise nothing is written.
    """
    folder = Path(folder)
    try:
        model.example_input()
    except LstmJaxError as exc:
        raise CheckpointError(f"{folder}: the model could not be rebuilt from this checkpoint: {exc}") from None
    folder.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "format": FORMAT,
        "model": model_config(model),
        "vocab": list(vocab.tokens),
        "optimizer": optimizer,
        "metadata": metadata or {},
        "platform": platform_record(),  # what produced these bits (lstm_jax.portability)
    }
    files = {"params.msgpack": serialization.to_bytes(jax.device_get(params))}
    if opt_state is not None:
        files["opt_state.msgpack"] = serialization.to_bytes(jax.device_get(opt_state))
    for name, tree in (extra_trees or {}).items():
        files[name] = serialization.to_bytes(jax.device_get(tree))
    config = json.loads(json.dumps(config))  # as it will be read back (tuples as lists, keys as str)
    config["integrity"] = {
        "config_sha256": _config_digest(config),
        "files": {name: {"bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()} for name, d in files.items()},
    }
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp creates 0700
        _write_synced(tmp / "config.json", (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode())
        for name, data in files.items():
            _write_synced(tmp / name, data)
        fsync_dir(tmp)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old)
        else:
            os.replace(tmp, folder)
        fsync_dir(folder.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_synced(path: Path, data: bytes) -> None:
    """Write and fsync, so a renamed checkpoint folder never holds a file still in the page cache."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _config_digest(config: dict) -> str:
    """SHA-256 of config.json's entries other than "integrity", in a canonical form."""
    body = {k: v for k, v in config.items() if k != "integrity"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def read_config(folder: Path) -> dict:
    """config.json, checked: a JSON object of this format whose recorded hash (if any) matches."""
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint config not found (is {folder} a checkpoint folder?)")
    try:
        config = json.loads(read_regular_file(path, CONFIG_MAX_BYTES).decode("utf-8"))
    except LstmJaxError as exc:
        raise CheckpointError(str(exc)) from None
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8, integers of thousands of digits
        raise CheckpointError(f"{path}: corrupted checkpoint config ({str(exc)[:200]})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(f"{path}: expected checkpoint format {FORMAT}, found {found!r}")
    integrity = config.get("integrity")
    if integrity is not None:
        if not isinstance(integrity, dict) or not isinstance(integrity.get("files"), dict):
            raise CheckpointError(f"{path}: malformed 'integrity' entry; the checkpoint cannot be verified")
        if integrity.get("config_sha256") != _config_digest(config):
            raise CheckpointError(
                f"{path}: its SHA-256 differs from the one recorded in it at save (edited or damaged); "
                "restore the checkpoint or retrain"
            )
    return config


def _read_verified(folder: Path, name: str, config: dict, max_bytes: int) -> bytes:
    """The bytes of `folder/name`, checked against the size and SHA-256 recorded in config.json
    (checkpoints written before hashes were recorded: only against `max_bytes`)."""
    path = folder / name
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    recorded = (config.get("integrity") or {}).get("files", {})
    if config.get("integrity") is not None and name not in recorded:
        raise CheckpointError(f"{path}: no hash recorded for it in config.json; it is not part of this checkpoint")
    entry = recorded.get(name) or {}
    size = path.stat().st_size
    expected = entry.get("bytes", None)
    if expected is not None and size != expected:
        raise CheckpointError(
            f"{path}: corrupted file: {size} bytes, expected {expected} as saved (truncated, or another file)"
        )
    try:
        data = read_regular_file(path, max_bytes if expected is None else expected)
    except LstmJaxError as exc:
        raise CheckpointError(str(exc)) from None
    if entry and hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise CheckpointError(
            f"{path}: corrupted file: its SHA-256 differs from the one config.json recorded at save (damaged, "
            "or another checkpoint's file); restore the checkpoint or retrain"
        )
    return data


def _decode(path: Path, data: bytes):
    try:
        return serialization.msgpack_restore(data)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise CheckpointError(f"{path}: corrupted file, cannot be decoded ({type(exc).__name__})") from None


def _describe(x) -> str:
    return f"{np.dtype(x.dtype).name}{list(x.shape)}"


def _fit_tree(path: Path, raw, template):
    """`raw` (a decoded msgpack tree) in the structure and shapes of `template`, or raise."""
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


def _tree_bytes(template) -> int:
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(template))


def restore_tree(path: Path, template, config: dict | None = None):
    """Restore a serialized pytree into the structure and shapes of `template`, or raise.

    With the checkpoint's `config`, the file is first checked against its recorded hash."""
    path = Path(path)
    limit = 2 * _tree_bytes(template) + (1 << 20)  # msgpack adds a little per array
    data = _read_verified(path.parent, path.name, config or {}, limit)
    return _fit_tree(path, _decode(path, data), template)


def _check_sizes(config_path: Path, kwargs: dict, raw) -> None:
    """Refuse model sizes that the stored parameters cannot hold, before building the model:
    no dimension exceeds the numbers stored, no more layers than arrays stored (each layer
    stores at least one), and at most MAX_LAYERS layers."""
    leaves = [x for x in jax.tree.leaves(raw) if hasattr(x, "shape")]
    numbers = sum(int(np.prod(x.shape)) for x in leaves)
    for key, value in kwargs.items():
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        bound = min(len(leaves), MAX_LAYERS) if key == "num_layers" else numbers
        if value > bound:
            raise CheckpointError(
                f"{config_path}: model.kwargs.{key}: expected at most {bound} (params.msgpack stores "
                f"{len(leaves)} arrays, {numbers} numbers), found {value}"
            )


def load_checkpoint(folder: str | Path) -> Checkpoint:
    """Rebuild the model from config.json alone and restore its parameters, strictly: hashes
    first, then sizes against the stored arrays, then every shape."""
    folder = Path(folder)
    config = read_config(folder)
    config_path = folder / "config.json"
    if config.get("integrity") is None:
        log.warning("%s: saved before checkpoints recorded hashes; it cannot be verified (retrain to add them)", folder)
    try:
        vocab = Vocabulary.from_list(config["vocab"], f"{config_path}: vocab")
        name, kwargs = config["model"]["name"], dict(config["model"]["kwargs"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{config_path}: missing or malformed entry {exc}") from None
    except LstmJaxError as exc:
        raise CheckpointError(f"{config_path}: {exc}") from None
    params_path = folder / "params.msgpack"
    raw = _decode(params_path, _read_verified(folder, "params.msgpack", config, memory_limit()))
    _check_sizes(config_path, kwargs, raw)
    try:
        model = build_model(name, kwargs)
    except (TypeError, ValueError, LstmJaxError) as exc:
        raise CheckpointError(f"{config_path}: {str(exc).splitlines()[0]}") from None
    if getattr(model, "vocab_size", len(vocab)) != len(vocab):
        raise CheckpointError(
            f"{config_path}: model vocab_size {model.vocab_size} does not match the {len(vocab)}-token vocabulary"
        )
    try:
        shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), model.example_input()))["params"]
    except (TypeError, ValueError, LstmJaxError) as exc:
        raise CheckpointError(
            f"{config_path}: model kwargs do not build a model ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from None
    params = _fit_tree(params_path, raw, shapes)
    return Checkpoint(model=model, params=jax.tree.map(np.asarray, params), vocab=vocab, config=config)


def restore_opt_state(folder: str | Path, template):
    """The optimizer state saved in `folder`, checked against `template` (e.g. `tx.init(params)`)."""
    folder = Path(folder)
    return restore_tree(folder / "opt_state.msgpack", jax.eval_shape(lambda: template), read_config(folder))


def digest(*parts) -> str:
    """A short hash of JSON-able values and arrays: what a resumable run must agree on."""
    h = hashlib.sha256()
    for part in parts:
        if hasattr(part, "shape"):
            part = np.asarray(part)
            h.update(f"{part.dtype}{part.shape}".encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]
