"""Process settings for stages (compilation cache) and the benchmark's worker protocol."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compilation_cache_is_written_and_reused_with_identical_results(tmp_path):
    code = """
import sys, jax, jax.numpy as jnp, numpy as np
from lstm_jax.nn import CharLM
from lstm_pipeline import runtime
runtime.enable_compilation_cache(sys.argv[1])
model = CharLM(vocab_size=7, embed_dim=4, hidden_size=8)
tokens = jnp.arange(12, dtype=jnp.int32).reshape(2, 6) % 7
params = model.init(jax.random.key(0), tokens)["params"]
loss = jax.jit(jax.grad(lambda p: model.apply({"params": p}, tokens)[0].sum()))
print(np.asarray(jax.tree.leaves(loss(params))[0]).tobytes().hex())
"""
    cache = tmp_path / "cache"
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, str(cache)], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout
        for _ in range(2)
    ]
    assert any(cache.iterdir()), "nothing was written to the compilation cache"
    assert runs[0] == runs[1]  # the cached program computes the same bits


def test_compilation_cache_can_be_switched_off(monkeypatch):
    from lstm_pipeline import runtime

    monkeypatch.setenv(runtime.CACHE_ENV, "off")
    assert runtime.enable_compilation_cache() is None


def test_benchmark_worker_reports_compile_and_step_times(tmp_path):
    env = {"LSTM_JAX_COMPILATION_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, "benchmarks/lstm_speed.py", "--worker", "lstm_jax", "--configs", "a", "--steps", "2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["compile"] > 0 and len(result["times"]) == 2 and all(t > 0 for t in result["times"])
