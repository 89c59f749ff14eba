"""What goes in and out: checkpoints, vocabularies, next-character datasets and corpora, atomic
output writers, safe reading of configured paths, standardisation, and torch/Keras conversion.
"""

from lstm_jax.io._outputs import write_bytes, write_csv, write_json, write_npy, write_text
from lstm_jax.io._safe_paths import irregular_entries, read_regular_file
from lstm_jax.io._vocab import PAD_ID, SPECIALS, UNK_ID, Vocabulary, remap_ids
from lstm_jax.io._datasets import count_steps, load_dataset, load_meta, window_counts
from lstm_jax.io._corpus import (
    CHUNK_CHARS,
    PYTHON_DOCS,
    file_chunks,
    prepare_dataset,
    python_docs_text,
    scan,
    text_files,
    truncate,
    window_stream,
)
from lstm_jax.io._scaling import fit_standardizer, standardize, unstandardize
from lstm_jax.io._checkpoint import Checkpoint, digest, load_checkpoint, save_checkpoint
from lstm_jax.io._torch import from_torch, to_torch
from lstm_jax.io._keras import from_keras, to_keras

__all__ = [
    "CHUNK_CHARS",
    "Checkpoint",
    "PAD_ID",
    "PYTHON_DOCS",
    "SPECIALS",
    "UNK_ID",
    "Vocabulary",
    "count_steps",
    "digest",
    "file_chunks",
    "fit_standardizer",
    "from_keras",
    "from_torch",
    "irregular_entries",
    "load_checkpoint",
    "load_dataset",
    "load_meta",
    "prepare_dataset",
    "python_docs_text",
    "read_regular_file",
    "remap_ids",
    "save_checkpoint",
    "scan",
    "standardize",
    "text_files",
    "to_keras",
    "to_torch",
    "truncate",
    "unstandardize",
    "window_counts",
    "window_stream",
    "write_bytes",
    "write_csv",
    "write_json",
    "write_npy",
    "write_text",
]
