"""Data-parallel training over a `jax.sharding.Mesh` with one 'data' axis.

The train step itself (`train.train_step`, `train.stateful_train_step`) knows nothing of
devices: this module only says where arrays live. Batches (and a stateful LSTM's state) are
split by rows over the 'data' axis, parameters and optimizer state are replicated, and XLA's
SPMD partitioner turns the gradient sum into an all-reduce. The same code runs on 1 device, on N
local devices, or on many hosts after `jax.distributed.initialize()` (then `jax.devices()` lists
every host's devices and each process feeds its own rows; see the README).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lstm_jax.errors import ArgumentError
from lstm_jax.training._step import stateful_train_step, train_step


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh named 'data' over `devices` (default: all devices of all processes)."""
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), ("data",))


def rows(mesh: Mesh) -> NamedSharding:
    """Leading axis split over 'data', the rest whole: for batches and LSTM states."""
    return NamedSharding(mesh, PartitionSpec("data"))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def shard_rows(mesh: Mesh, tree):
    """Place every array of `tree` with its rows split over the mesh (rows must divide evenly)."""
    size = mesh.shape["data"]
    for leaf in jax.tree.leaves(tree):
        if leaf.shape[0] % size:
            raise ArgumentError(f"batch of {leaf.shape[0]} rows does not split over {size} devices")
    return jax.device_put(tree, rows(mesh))


def replicate(mesh: Mesh, tree):
    return jax.device_put(tree, replicated(mesh))


def make_parallel_train_step(mesh: Mesh):
    """`train_step` jitted for the mesh: (replicated TrainState, row-sharded batch, rng) ->
    (replicated TrainState, metric sums)."""
    return jax.jit(
        train_step,
        in_shardings=(replicated(mesh), rows(mesh), replicated(mesh)),
        out_shardings=(replicated(mesh), replicated(mesh)),
    )


def make_parallel_stateful_step(mesh: Mesh):
    """`stateful_train_step` jitted for the mesh; the carried LSTM state stays split by rows."""
    return jax.jit(
        stateful_train_step,
        in_shardings=(replicated(mesh), rows(mesh), rows(mesh), replicated(mesh)),
        out_shardings=(replicated(mesh), rows(mesh), replicated(mesh)),
    )


def run_metadata() -> dict:
    """Where this run ran: host count, this process's index, local and global device counts."""
    return {
        "process_count": jax.process_count(),
        "process_index": jax.process_index(),
        "local_devices": jax.local_device_count(),
        "devices": jax.device_count(),
        "platform": jax.default_backend(),
    }
