"""Same bits on every x86-64 CPU with AVX2 and FMA: the pins, and the record of where a run ran.

Left to itself, XLA on the CPU compiles for the machine it runs on, and the last bits of its
results follow the core count, the instruction set, and the product kernels it picks by CPUID
(YNNPACK, oneDNN). `pin_for_portability()` fixes each before JAX starts its CPU backend:

- a thread pool of `INTRA_OP_THREADS` threads whatever the core count (`PJRT_NPROC`, read by
  XLA's CPU client);
- the instruction set capped at AVX2 (`--xla_cpu_max_isa`; FMA comes with it on every x86-64
  CPU that has AVX2);
- every matrix product on Eigen (no YNNPACK, no XNNPACK), with Eigen's own compiled block kernel
  instead of oneDNN's (`PINNED_ENV`).

Call it before JAX's first computation; the pipeline's stages do (`lstm_pipeline.stage`).
`LSTM_JAX_PORTABLE=0` lets XLA use every core and instruction instead (faster on big machines,
machine-specific bits). `platform_record()` says what produced a result: under the pins only
what decides the bits, so the record itself is the same on every machine.

NumPy and the OpenBLAS in NumPy's and SciPy's wheels pick their kernels by CPUID as well, at
load time, which a library imported after NumPy cannot pin: the pipeline's stage scripts import
`lstm_pipeline.pinned` first for that (its baselines go through them; this library does not).

Not covered: GPUs and ARM CPUs, where bit identity is not promised (the gate's tolerances apply
there), and CPUs with less than 32 KiB of L1 data cache (a faked 16 KiB L1d changed Eigen's
blocks). What each pin was found by, and what it costs: BENCHMARKS.md, "What decided the bits"
and "What the portability pins cost".
"""

from __future__ import annotations

import functools
import os
import platform
import shlex
import sys
from importlib import metadata

from lstm_jax.errors import ConfigError

PORTABLE_ENV = "LSTM_JAX_PORTABLE"  # "1" (default): pin; "0": let XLA use the whole machine
INTRA_OP_THREADS = 2  # threads in XLA's CPU pool, whatever the machine's core count
THREADS_ENV = "PJRT_NPROC"  # XLA's CPU client sizes its intra-op pool from this
ISA = "AVX2"
PINNED_XLA_FLAGS = {
    "--xla_cpu_max_isa": ISA,
    "--xla_cpu_experimental_ynn_fusion_type": "",  # no YNNPACK: its kernels follow the CPU
    "--xla_cpu_experimental_xnn_fusion_type": "",  # no XNNPACK either
}
# Read from the environment by jaxlib's native code on first use, so set before the backend starts.
PINNED_ENV = {
    # Eigen's own compiled kernel for each block of a matrix product, not oneDNN's sgemm, whose
    # kernel and work split follow the CPU (module docstring).
    "TENSORFLOW_USE_CUSTOM_CONTRACTION_KERNEL": "false",
    # Should anything still reach oneDNN, its AVX2 kernels, as XLA's own code.
    "ONEDNN_MAX_CPU_ISA": ISA,
}
REQUIRED_CPU_FLAGS = ("avx2", "fma")
ISA_FLAGS_SHOWN = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")


def portable_requested() -> bool:
    """Whether LSTM_JAX_PORTABLE asks for the pins ("1", the default) or not ("0")."""
    value = os.environ.get(PORTABLE_ENV, "1").strip()
    if value not in ("0", "1"):
        raise ConfigError(f"{PORTABLE_ENV}: expected 0 or 1, found {value!r}")
    return value == "1"


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, ISA flags) of the first CPU in /proc/cpuinfo, read once per process."""
    model, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = frozenset(line.split(":", 1)[1].split())
                if model and flags:
                    break
    except OSError:
        pass
    return model, flags


def cpu_flags() -> set[str]:
    """The instruction-set flags /proc/cpuinfo lists (empty where there is none)."""
    return set(_cpuinfo()[1])


def cpu_model() -> str:
    """The CPU's model name, e.g. "AMD EPYC 7B13" (platform.processor() where Linux does not say)."""
    return _cpuinfo()[0] or platform.processor() or "unknown"


def _cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def isa_extensions() -> list[str]:
    """The instruction-set extensions that matter to XLA's CPU code, as this CPU lists them."""
    return sorted(cpu_flags() & set(ISA_FLAGS_SHOWN))


def pinnable() -> bool:
    """True on an x86-64 CPU with AVX2 and FMA, the machines the pins make agree."""
    return platform.machine().lower() in ("x86_64", "amd64") and all(f in cpu_flags() for f in REQUIRED_CPU_FLAGS)


def _backend_started() -> bool:
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


def pinned_xla_flags(existing: str) -> str:
    """`existing` XLA_FLAGS with each pinned flag removed and the pinned values appended."""
    kept = [f for f in shlex.split(existing) if f.split("=", 1)[0] not in PINNED_XLA_FLAGS]
    return " ".join(kept + [f"{name}={value}" for name, value in PINNED_XLA_FLAGS.items()])


def pin_for_portability() -> bool:
    """Pin XLA's CPU code generation and threading (see the module docstring); returns whether
    the pins are in force. A no-op when LSTM_JAX_PORTABLE=0, off x86-64/AVX2, or on a GPU run
    (JAX_PLATFORMS naming cuda/gpu). Must run before JAX's first computation in the process."""
    if not portable_requested() or not pinnable() or _gpu_requested():
        return False
    if "jax" in sys.modules and _backend_started():
        raise ConfigError(
            f"{PORTABLE_ENV}: the pins must be set before JAX starts its CPU backend; "
            "call pin_for_portability() before any computation"
        )
    os.environ["XLA_FLAGS"] = pinned_xla_flags(os.environ.get("XLA_FLAGS", ""))
    os.environ[THREADS_ENV] = str(INTRA_OP_THREADS)
    os.environ.update(PINNED_ENV)
    return True


def _gpu_requested() -> bool:
    platforms = os.environ.get("JAX_PLATFORMS", "").lower()
    return any(p in platforms for p in ("cuda", "gpu", "rocm", "tpu"))


def pins_in_force() -> bool:
    """Whether this process runs under the pins (the environment says so, as XLA will read it)."""
    flags = dict(f.split("=", 1) if "=" in f else (f, "") for f in shlex.split(os.environ.get("XLA_FLAGS", "")))
    return (
        pinnable()
        and not _gpu_requested()
        and os.environ.get(THREADS_ENV) == str(INTRA_OP_THREADS)
        and all(flags.get(name) == value for name, value in PINNED_XLA_FLAGS.items())
        and all(os.environ.get(name) == value for name, value in PINNED_ENV.items())
    )


@functools.cache
def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def platform_record() -> dict:
    """What produced a result, for metrics files and checkpoints.

    Under the pins the record holds only what decides the bits (library versions, the pinned
    ISA, thread count and product library), so it is the same on every machine that reproduces
    them: a CPU model in a committed file would itself make two machines' outputs differ. Without
    the pins (or on a GPU) the bits are the machine's own, and the record names the machine too.
    """
    record = {
        "arch": platform.machine(),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "flax": _version("flax"),
        "optax": _version("optax"),
        "numpy": _version("numpy"),
        "portable": pins_in_force(),
    }
    if record["portable"]:
        record["pins"] = {"max_isa": ISA, "intra_op_threads": INTRA_OP_THREADS, "products": "eigen kernel"}
        return record
    record["cpu"] = cpu_model()
    record["cores"] = _cores()
    record["isa"] = isa_extensions()
    record["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    return record


def machine_record() -> dict:
    """This machine and how a run here would be pinned (for `lstm-jax info`)."""
    return {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores": _cores(),
        "isa": isa_extensions(),
        "pinnable": pinnable(),
        f"{PORTABLE_ENV}": os.environ.get(PORTABLE_ENV, "1"),
        "pins_in_force": pins_in_force(),
        "pinned_xla_flags": pinned_xla_flags(""),
        "intra_op_threads_pinned": INTRA_OP_THREADS,
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
    }
