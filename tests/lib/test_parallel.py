"""Data-parallel training on 2 CPU devices equals 1-device training, and really splits the batch.

JAX fixes its device count at import, so the check runs in a fresh interpreter with
XLA_FLAGS=--xla_force_host_platform_device_count=2.
"""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from lstm_jax.io._datasets import build_windows, stream_batches
    from lstm_jax.nn import CharLM
    from lstm_jax.training._parallel import (data_mesh, make_parallel_stateful_step, make_parallel_train_step,
                                   replicate, run_metadata, shard_rows)
    from lstm_jax.training._step import create_train_state, init_params, make_optimizer, split_window

    assert jax.device_count() == 2, jax.devices()
    ds = build_windows("the quick brown fox jumps over the lazy dog. " * 10, 12, 1, 0.1)
    model = CharLM(vocab_size=len(ds.vocab), embed_dim=8, hidden_size=32)

    def losses(n_devices, stateful=False):
        mesh = data_mesh(jax.devices()[:n_devices])
        state = replicate(mesh, create_train_state(model, init_params(model, jax.random.key(0)),
                                                   make_optimizer(0.01, 100, schedule="constant", clip_norm=1.0)))
        out = []
        if stateful:
            step, carry = make_parallel_stateful_step(mesh), shard_rows(mesh, model.initial_state(8))
            batches = stream_batches(ds.vocab.encode("the quick brown fox jumps over the lazy dog. " * 10), 8, 12)
        else:
            step, batches = make_parallel_train_step(mesh), ds.train[:160].reshape(10, 16, -1)
        for k, w in enumerate(batches):
            batch = shard_rows(mesh, split_window(jnp.asarray(w)))
            if k == 0:
                shards = batch["inputs"].addressable_shards
                assert len(shards) == n_devices and shards[0].data.shape[0] == w.shape[0] // n_devices
            key = replicate(mesh, jax.random.key(k))
            if stateful:
                state, carry, metrics = step(state, batch, carry, key)
                assert len(carry[0].h.addressable_shards) == n_devices
            else:
                state, metrics = step(state, batch, key)
            out.append(float(metrics.sums.mean_loss()))
        return np.array(out)

    for stateful in (False, True):
        one, two = losses(1, stateful), losses(2, stateful)
        assert np.allclose(one, two, atol=1e-5), (stateful, one, two)
        assert one[-1] < one[0]
    assert run_metadata()["devices"] == 2 and run_metadata()["process_count"] == 1
    print("ok", float(np.abs(one - two).max()))
""")


def test_two_devices_match_one_device_and_split_the_batch():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok")
