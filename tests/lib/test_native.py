"""implementation="native" (C++ loops with their own GEMM, lstm_jax/recurrence/_native.py) against autodiff and "fused".

In float64 the native forward and backward equal plain autodiff of `lstm_scan` up to rounding, for
every combination of mask, recurrent dropout, resets and direction; in float32 the layer matches
"fused" (the torch reference tests also run "native": tests/lib/test_torch_reference.py). The
build is checked too: where a C++ compiler exists, `make install` must have built the kernels.
"""

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax import LSTM, portability
from lstm_jax.recurrence import native, LSTMState
from lstm_jax.errors import ArgumentError
from lstm_jax.recurrence._scan import recurrence

needs_native = pytest.mark.skipif(not native.available(), reason=f"native kernels: {native.unavailable_reason()}")


def test_the_kernels_are_built_where_a_compiler_is():
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler on this machine: the fallback to fused is tested below")
    assert native.unavailable_reason() is None


def _inputs(steps=7, batch=4, hidden=5, features=3, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)

    def normal(*shape, scale=1.0):
        return jnp.asarray(rng.standard_normal(shape) * scale, dtype)

    return dict(
        args=(
            normal(steps, batch, features),
            normal(features, 4 * hidden, scale=0.5),
            normal(hidden, 4 * hidden, scale=0.5),
            normal(4 * hidden, scale=0.3),
            normal(batch, hidden),
            normal(batch, hidden),
        ),
        mask=jnp.asarray(rng.random((steps, batch)) < 0.7),
        reset=jnp.asarray(rng.random((steps, batch)) < 0.25),
        keep=jnp.asarray((rng.random((batch, hidden)) < 0.8) / 0.8, dtype),
        cot=normal(steps, batch, hidden),
    )


def _value_and_grads(implementation, d, mask, keep, reset, reverse):
    """Loss of the outputs and both parts of the final state, and its gradients w.r.t. all six inputs."""

    def loss(x, kernel_ih, kernel_hh, bias, c0, h0):
        state, out = recurrence(
            x, kernel_ih, kernel_hh, bias, LSTMState(c0, h0), mask, h_keep=keep, reset=reset, reverse=reverse,
            implementation=implementation,
        )  # fmt: skip
        return jnp.sum(out * d["cot"]) + jnp.sum(state.c * state.c) + jnp.sum(state.h**3)

    return jax.value_and_grad(loss, argnums=tuple(range(6)))(*d["args"])


@needs_native
@pytest.mark.parametrize(
    "masked,dropout,resets,reverse", list(itertools.product([False, True], [False, True], [False, True], [False, True]))
)
def test_native_value_and_gradients_match_autodiff_in_float64(masked, dropout, resets, reverse):
    with jax.enable_x64(True):
        d = _inputs()
        options = (d["mask"] if masked else None, d["keep"] if dropout else None, d["reset"] if resets else None)
        got = _value_and_grads("native", d, *options, reverse)
        want = _value_and_grads("scan", d, *options, reverse)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
        # Without a backward pass the forward stores nothing and computes x_t W_ih step by step.
        mask, keep, reset = options
        inference = [
            recurrence(*d["args"][:4], LSTMState(*d["args"][4:]), mask, h_keep=keep, reset=reset, reverse=reverse,
                       implementation=implementation)
            for implementation in ("native", "scan")
        ]  # fmt: skip
        for g, w in zip(*map(jax.tree.leaves, inference)):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@needs_native
@pytest.mark.parametrize("steps,batch", [(1, 3), (40, 2), (3, 300)])
def test_weight_gradient_chunks_cover_every_step(steps, batch):
    """The weight gradient is formed over blocks of ceil(1024 / B) steps: block edges, a partial
    last block and a single block all have to add up to autodiff's sum over steps."""
    with jax.enable_x64(True):
        d = _inputs(steps=steps, batch=batch)
        for reverse in (False, True):
            got = _value_and_grads("native", d, d["mask"], None, d["reset"], reverse)
            want = _value_and_grads("scan", d, d["mask"], None, d["reset"], reverse)
            for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
                np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@needs_native
def test_native_layer_matches_fused_in_float32_with_padding_resets_and_dropout():
    # 48 units, 64 rows: big enough that the team shares the steps (2 threads in layer 1, 3 in
    # layer 2; `_native_lstm.cc`'s threads_for), so each thread's masks, resets and dropout count.
    x = jax.random.normal(jax.random.key(0), (64, 9, 4))
    lengths = jax.random.randint(jax.random.key(3), (64,), 1, 10)
    reset = jax.random.bernoulli(jax.random.key(4), 0.1, (64, 9))
    fused = LSTM(hidden_size=48, num_layers=2, bidirectional=True, recurrent_dropout=0.3)
    params = fused.init(jax.random.key(1), x)

    def run(layer):
        def loss(p):
            out, state = layer.apply(
                p, x, lengths=lengths, reset=reset, deterministic=False, rngs={"dropout": jax.random.key(2)}
            )
            return jnp.sum(jnp.sin(out)) + sum(jnp.sum(s.h) + jnp.sum(s.c) for s in state), (out, state)

        return jax.value_and_grad(loss, has_aux=True)(params)

    got, want = run(fused.clone(implementation="native")), run(fused)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):  # float32 sums of 576 terms
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-5)


@needs_native
def test_native_runs_under_jit_and_gives_the_same_bits_twice():
    d = _inputs(dtype=np.float32)
    run = jax.jit(lambda *a: _value_and_grads("native", dict(d, args=a), d["mask"], d["keep"], d["reset"], False))
    first, second = run(*d["args"]), run(*d["args"])
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second)):
        np.testing.assert_array_equal(a, b)


_PROBE = textwrap.dedent(
    """
    import sys, jax, jax.numpy as jnp, numpy as np
    from lstm_jax import LSTM
    from lstm_jax.recurrence import native
    jax.config.update("jax_enable_x64", sys.argv[2] == "float64")
    native._poison_residuals(sys.argv[3:] == ["poison"])
    # 70 units (5 panels of 16, the last partial; 9 of 8 in float64), 20 features (full and
    # partial panels in both dtypes), 61 rows (row tiles of 6 or 8, the last partial in both
    # kernels), 100 steps (weight-gradient blocks of 17, the last of 15). Padding, resets and
    # recurrent dropout too: each thread applies them to its own units.
    layer = LSTM(70, implementation="native", recurrent_dropout=0.2, param_dtype=sys.argv[2])
    x = jax.random.normal(jax.random.key(0), (61, 100, 20), sys.argv[2])
    lengths = jax.random.randint(jax.random.key(2), (61,), 1, 101)
    reset = jax.random.bernoulli(jax.random.key(3), 0.05, (61, 100))
    params = layer.init(jax.random.key(1), x)
    run = lambda p: layer.apply(
        p, x, lengths=lengths, reset=reset, deterministic=False, rngs={"dropout": jax.random.key(4)}
    )[0]
    grads = jax.grad(lambda p: jnp.sum(jnp.tanh(run(p))))(params)
    print("swept", native.last_forward_swept())
    print("sleeps", native.barrier_sleeps())
    np.save(sys.argv[1], np.concatenate([np.ravel(g) for g in jax.tree.leaves(grads)]))
    print(native.team_size(), native.last_call_threads(), native.isa())
    """
)


def _probe(tmp_path, dtype: str, prefix=(), threads=None, isa=None, poison=False, swept=None, sleeps=None):
    """(gradients, (team size, threads of the last call, instruction set)) of _PROBE's layer,
    run in a fresh process under the given thread count and instruction set; with `poison`,
    the residuals filled with NaN before the forward's loop. `swept` (a list) gets
    `native.last_forward_swept()`, `sleeps` (a list) `native.barrier_sleeps()`."""
    out = tmp_path / f"{dtype}-{threads}-{isa}-{len(prefix)}-{poison}.npy"
    env = {k: v for k, v in os.environ.items() if k not in (native.THREADS_ENV, native.ISA_ENV)}
    env.update({native.THREADS_ENV: threads} if threads else {})
    env.update({native.ISA_ENV: isa} if isa else {})
    command = [*prefix, sys.executable, "-c", _PROBE, str(out), dtype, *(["poison"] if poison else [])]
    proc = subprocess.run(command, env=env, check=True, timeout=300, capture_output=True, text=True)
    if swept is not None:
        swept += [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("swept ")]
    if sleeps is not None:
        sleeps += [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("sleeps ")]
    team, last, used = proc.stdout.split()[-3:]
    return np.load(out), (int(team), int(last), used)


_HAS_AVX512 = "avx512f" in portability.cpu_flags()


@needs_native
def test_the_bits_do_not_depend_on_the_number_of_threads_cores_or_instruction_set(tmp_path):
    """Each output element is summed by one thread in a fixed order, one fused multiply-add at a
    time: teams of 1, 2, 3 and 5 threads (5: one per panel of units), a one-core run and, where
    the CPU has AVX-512, the AVX2 kernel give the same bits. Each run reports the threads its
    last call used and its instruction set, so the comparison is not vacuous."""
    isa = "avx512" if _HAS_AVX512 else "avx2"
    reference, info = _probe(tmp_path, "float32", threads="1")
    assert info == (1, 1, isa)
    for threads in ("2", "3", "5"):
        bits, info = _probe(tmp_path, "float32", threads=threads)
        assert info == (int(threads), int(threads), isa)  # with 5 panels of units all 5 threads work
        np.testing.assert_array_equal(bits, reference, err_msg=f"{threads} threads")
    if shutil.which("taskset") is not None:
        bits, info = _probe(tmp_path, "float32", prefix=("taskset", "-c", "0"))
        assert info == (1, 1, isa)
        np.testing.assert_array_equal(bits, reference, err_msg="1 core, default team")
        # Two threads on one core (as when other jobs hold the other cores): a thread waiting at
        # the barrier sleeps after its short spin, handing the core to the one it waits for,
        # instead of spinning out its time slice (issue 30). Same bits.
        sleeps = []
        bits, info = _probe(tmp_path, "float32", prefix=("taskset", "-c", "0"), threads="2", sleeps=sleeps)
        assert info == (2, 2, isa)
        np.testing.assert_array_equal(bits, reference, err_msg="a team of 2 on 1 core")
        assert sleeps and sleeps[0] > 0, "the barrier never slept: a waiting thread spun on a shared core"
    if _HAS_AVX512:
        bits, info = _probe(tmp_path, "float32", threads="2", isa="avx2")
        assert info == (2, 2, "avx2")
        np.testing.assert_array_equal(bits, reference, err_msg="the AVX2 kernel")


@needs_native
def test_every_residual_is_written_before_it_is_read(tmp_path):
    """The forward faults its residuals' pages in (with zeros) before the loop only where they
    are not in memory yet; pages malloc reused hold whatever an earlier step left. That is safe
    only if the loop writes every residual: filled with NaN first, the gradients are the same."""
    reference, _ = _probe(tmp_path, "float32", threads="2")
    swept = []
    bits, _ = _probe(tmp_path, "float32", threads="2", poison=True, swept=swept)
    assert swept == [6], swept  # 2 threads x 3 buffers, all filled with NaN
    np.testing.assert_array_equal(bits, reference)


_HUGE_PAGES_PROBE = textwrap.dedent(
    """
    import json, mmap, resource
    import jax, jax.numpy as jnp
    from lstm_jax.recurrence import native

    assert native.available(), native.unavailable_reason()  # loads and registers the kernels
    faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    # Control: can this process get transparent huge pages at all (THP on, one free)?
    region = mmap.mmap(-1, 64 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    region.madvise(mmap.MADV_HUGEPAGE)
    before = faults()
    for offset in range(0, 64 << 20, 4096):
        region[offset] = 1
    control = faults() - before
    # The forward with residuals: T=256, B=64, F=32, H=512 (gates 128 MiB; 226 MiB of results).
    T, B, F, H = 256, 64, 32, 512
    x, c0 = jnp.ones((T, B, F)), jnp.zeros((B, H))
    kernel, bias = jnp.full((F + H, 4 * H), 0.01), jnp.zeros(4 * H)
    forward = jax.jit(lambda x: native._forward(x, kernel, bias, c0, c0, None, None, None, False, save=True))
    kept = [forward(x)]  # compiled; results kept alive, so the next call's are fresh memory
    jax.block_until_ready(kept)
    before = faults()
    kept.append(jax.block_until_ready(forward(x)))
    pages = sum(r.nbytes for r in kept[-1]) // 4096
    print(json.dumps({"control": control, "faults": faults() - before, "pages": pages}))
    """
)


@needs_native
def test_fresh_residuals_are_faulted_in_as_huge_pages():
    """The forward asks for transparent huge pages in its residuals and outputs before it
    writes them (fresh 4 KiB pages cost up to a fifth of a train step): where this process can
    get huge pages at all (a control region, madvised the same way), faulting them in takes
    under a quarter of the faults that 4 KiB pages would."""
    out = subprocess.run(
        [sys.executable, "-c", _HUGE_PAGES_PROBE], check=True, timeout=300, capture_output=True, text=True
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    if got["control"] > (64 << 20) // 4096 // 4:
        pytest.skip(f"no transparent huge pages here: a madvised 64 MiB region took {got['control']} faults")
    assert got["faults"] < got["pages"] // 4, got


@needs_native
@pytest.mark.skipif(not _HAS_AVX512, reason="the CPU lacks AVX-512: only the AVX2 kernel runs here")
def test_the_avx512_kernel_gives_the_avx2_kernels_bits_in_float64(tmp_path):
    """The float64 kernels (8 doubles per panel) too: AVX2 on 2 threads, AVX-512 on 1."""
    avx2, info = _probe(tmp_path, "float64", threads="2", isa="avx2")
    assert info == (2, 2, "avx2")
    avx512, info = _probe(tmp_path, "float64", threads="1", isa="avx512")
    assert info == (1, 1, "avx512")
    np.testing.assert_array_equal(avx512, avx2)


def test_avx512_on_a_cpu_without_it_is_a_clear_error():
    with pytest.raises(
        ArgumentError, match="LSTM_JAX_NATIVE_ISA: expected avx2 on this CPU .it lacks AVX-512., found 'avx512'"
    ):
        native.check_isa_request("avx512", {"avx2", "fma"})
    native.check_isa_request("avx2", {"avx2", "fma"})
    native.check_isa_request(None, {"avx2", "fma"})


def test_a_bad_instruction_set_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(native.ISA_ENV, "sse2")
    with pytest.raises(ArgumentError, match=r"LSTM_JAX_NATIVE_ISA: expected one of \['avx2', 'avx512'\], found 'sse2'"):
        native._isa_wanted()


def test_a_bad_thread_count_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(native.THREADS_ENV, "two")
    with pytest.raises(
        ArgumentError, match="LSTM_JAX_NATIVE_THREADS: expected a whole number of threads >= 1, found 'two'"
    ):
        native._threads_wanted()


def test_zoneout_and_mixed_precision_are_clear_errors_on_native():
    x, kernel_ih, kernel_hh = jnp.zeros((3, 4, 5)), jnp.zeros((5, 8)), jnp.zeros((2, 8))
    state = LSTMState(jnp.zeros((4, 2)), jnp.zeros((4, 2)))
    with pytest.raises(ArgumentError, match='zoneout: expected None with implementation="native"'):
        recurrence(x, kernel_ih, kernel_hh, None, state, zoneout=(0.5, 0.5), implementation="native")
    with pytest.raises(ArgumentError, match='dtype: expected None with implementation="native"'):
        recurrence(x, kernel_ih, kernel_hh, None, state, dtype=jnp.bfloat16, implementation="native")
    with pytest.raises(ArgumentError, match="implementation: expected one of \\('fused', 'scan'\\)"):
        from lstm_jax.nn._gru import gru_recurrence

        gru_recurrence(x, jnp.zeros((5, 6)), jnp.zeros((2, 6)), None, None, state, implementation="native")


def test_without_the_kernels_native_warns_once_and_gives_fused_bits(monkeypatch):
    monkeypatch.setattr(native, "available", lambda: False)
    monkeypatch.setattr(native, "unavailable_reason", lambda: "the C++ extension was not built (test)")
    layer = LSTM(8, implementation="native")
    x = jax.random.normal(jax.random.key(0), (3, 5, 4))
    params = layer.init(jax.random.key(1), x)
    native.warn_unavailable.cache_clear()  # init already ran the layer (and warned)
    with pytest.warns(RuntimeWarning, match=r'runs "fused" here: the C\+\+ extension was not built'):
        out, _ = layer.apply(params, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process: the second call is silent
        again, _ = layer.apply(params, x)
    native.warn_unavailable.cache_clear()
    np.testing.assert_array_equal(out, layer.clone(implementation="fused").apply(params, x)[0])
    np.testing.assert_array_equal(again, out)
