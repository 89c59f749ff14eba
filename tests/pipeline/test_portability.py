"""Issue 14: a stage's outputs are the same bytes whatever varies between two x86-64 machines.

On one machine we vary what differs between machines: the cores the process may use (CPU
affinity, 1 against 2), the instruction set XLA is told it may use (a machine's or a user's
XLA_FLAGS), a cold against a warm compilation cache, the working directory and PYTHONHASHSEED.
The stage is the real `stages/train.py`, on a small text, with the headline model's width (256
hidden units) and implementation "fused", so that every product is XLA's, as in the stages other
than the char models (which run "native", whose bits tests/lib/test_native.py pins down). A last
run without the pins must differ, showing the comparison can fail.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lstm_jax import portability

ROOT = Path(__file__).resolve().parents[2]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())
ENV_KEYS = (
    portability.PORTABLE_ENV,
    portability.THREADS_ENV,
    "XLA_FLAGS",
    "PYTHONHASHSEED",
    "NPROC",
    *portability.PINNED_ENV,
)

pytestmark = pytest.mark.skipif(not portability.pinnable(), reason="the pins apply to x86-64 CPUs with AVX2 and FMA")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A params file for a small train run, and its prepared dataset."""
    ws = tmp_path_factory.mktemp("portable")
    params = copy.deepcopy(RAW)
    text = "a small text, to be learned the same way on every machine; "
    params["prepare"]["texts"] = {"tiny": {"text": text, "repeat": 30, "separator": "", "stride": 5}}
    for section, key in (("tutorial", "dataset"), ("transfer", "dataset"), ("transfer", "forgetting_dataset")):
        params[section][key] = "tiny"
    params["train"].update(dataset="tiny", epochs=2, steps=None, patience=None, batch_size=32, checkpoint_every=1000)
    params["train"]["model"]["implementation"] = "fused"
    (ws / "params.yaml").write_text(yaml.safe_dump(params))
    run([ROOT / "stages/prepare.py", "--params", ws / "params.yaml", "--out", ws / "data", "--metrics", ws / "p.json"])
    return ws


def run(argv, *, env_extra=None, cwd=ROOT, one_core=False):
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(env_extra or {})
    allowed = sorted(os.sched_getaffinity(0))
    proc = subprocess.run(
        [sys.executable, *map(str, argv)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, {allowed[0]})) if one_core else None,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def train(ws: Path, name: str, cache: str = "warm", **kwargs) -> dict[str, str]:
    """Run the train stage into ws/name; {file under it: sha256} of everything it wrote except
    the resumable checkpoints (their progress files record wall-clock time)."""
    out = ws / name
    env = {"LSTM_JAX_COMPILATION_CACHE": str(ws / f"cache-{cache}"), **kwargs.pop("env_extra", {})}
    argv = [ROOT / "stages/train.py", "--params", ws / "params.yaml", "--section", "train"]
    argv += ["--data", ws / "data/tiny", "--model", out / "model", "--logits", out / "logits.npy"]
    argv += ["--checkpoints", out / "ckpt", "--metrics", out / "metrics.json", "--live", out / "live"]
    run(argv, env_extra=env, **kwargs)
    files = sorted(p for p in out.rglob("*") if p.is_file() and "ckpt" not in p.relative_to(out).parts)
    assert len(files) >= 5, files
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def reference(workspace):
    """Two cores, a cold cache (the first run fills it), default environment."""
    return train(workspace, "reference")


def differing(a: dict, b: dict) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


ABOVE_PIN = "AVX512" if "avx512f" in portability.cpu_flags() else None
VARIANTS = {
    "warm compilation cache": {},
    "one core": {"one_core": True},  # CPU affinity: XLA sizes its thread pool by it
    # A machine's (or a user's) XLA_FLAGS and thread count: the pins override them.
    "ISA below the pin (AVX), 1 thread asked": {
        "env_extra": {"XLA_FLAGS": "--xla_cpu_max_isa=AVX", portability.THREADS_ENV: "1"}
    },
    "ISA above the pin": {"env_extra": {"XLA_FLAGS": f"--xla_cpu_max_isa={ABOVE_PIN}"}},
    # A user's switch back to oneDNN's block kernel, at its best ISA: the pins override it.
    "oneDNN asked for": {
        "env_extra": {"TENSORFLOW_USE_CUSTOM_CONTRACTION_KERNEL": "true", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
    },
    "another working directory": {"cwd": "/"},
    "another PYTHONHASHSEED": {"env_extra": {"PYTHONHASHSEED": "4242"}},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_train_stage_outputs_are_identical_bytes(workspace, reference, variant):
    if variant == "ISA above the pin" and ABOVE_PIN is None:
        pytest.skip(f"this CPU has no instruction set above the pin ({portability.ISA})")
    kwargs = copy.deepcopy(VARIANTS[variant])
    found = train(workspace, variant.split(" (")[0].replace(" ", "_").replace(",", ""), **kwargs)
    assert differing(reference, found) == [], f"{variant}: these outputs changed"


@pytest.fixture(scope="module")
def unpinned(workspace):
    env = {portability.PORTABLE_ENV: "0", "XLA_FLAGS": "--xla_cpu_max_isa=AVX"}
    return train(workspace, "unpinned", cache="unpinned", env_extra=env)


def test_the_comparison_can_fail_without_the_pins(reference, unpinned):
    """With the pins off, XLA's own choices (here AVX instead of AVX2) change the trained
    weights: the equalities above are the pins' doing, not a comparison that cannot fail."""
    assert "model/params.msgpack" in differing(reference, unpinned)


def test_the_block_kernel_pin_changes_the_bits(workspace, reference):
    """The XLA flags and thread count of the pins, but oneDNN's block kernel (the jaxlib
    default): other weights, so the kernel pin is not a no-op on this machine (oneDNN's and
    Eigen's kernels sum in different orders on any CPU)."""
    flags = portability.pinned_xla_flags("")
    env = {
        portability.PORTABLE_ENV: "0",
        "XLA_FLAGS": flags,
        portability.THREADS_ENV: str(portability.INTRA_OP_THREADS),
    }
    found = train(workspace, "onednn_kernel", cache="onednn", env_extra=env)
    assert "model/params.msgpack" in differing(reference, found)


def test_metrics_and_checkpoints_record_the_platform(workspace, reference, unpinned):
    metrics = json.loads((workspace / "reference/metrics.json").read_text())
    config = json.loads((workspace / "reference/model/config.json").read_text())
    for record in (metrics["platform"], config["platform"]):
        assert record["portable"] is True
        assert record["pins"] == {"max_isa": "AVX2", "intra_op_threads": 2, "products": "eigen kernel"}
        assert "cpu" not in record  # a CPU model would make two machines' files differ
    unpinned = json.loads((workspace / "unpinned/metrics.json").read_text())["platform"]
    assert unpinned["portable"] is False and unpinned["cpu"] == portability.cpu_model()
    assert unpinned["xla_flags"] == "--xla_cpu_max_isa=AVX"


def test_pinned_flags_replace_the_users_and_keep_the_rest():
    flags = portability.pinned_xla_flags("--xla_cpu_max_isa=AVX512 --xla_force_host_platform_device_count=2")
    assert flags.split() == [
        "--xla_force_host_platform_device_count=2",
        "--xla_cpu_max_isa=AVX2",
        "--xla_cpu_experimental_ynn_fusion_type=",
        "--xla_cpu_experimental_xnn_fusion_type=",
    ]


def test_pins_refuse_a_started_backend_and_a_bad_switch(monkeypatch):
    import jax

    from lstm_jax.errors import ConfigError

    jax.devices()  # this process's backend has started: pinning now would not reach XLA
    monkeypatch.delenv(portability.PORTABLE_ENV, raising=False)
    with pytest.raises(ConfigError, match="before JAX starts its CPU backend"):
        portability.pin_for_portability()
    monkeypatch.setenv(portability.PORTABLE_ENV, "yes")
    with pytest.raises(ConfigError, match=r"LSTM_JAX_PORTABLE: expected 0 or 1, found 'yes'"):
        portability.pin_for_portability()
    monkeypatch.setenv(portability.PORTABLE_ENV, "0")
    assert portability.pin_for_portability() is False
