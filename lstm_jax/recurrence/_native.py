"""implementation="native": the LSTM recurrence as two XLA FFI calls into C++ (`_native_lstm.cc`).

One call runs the whole forward loop over time, one the whole backward loop. Inside, as in
oneDNN's RNN (torch's CPU LSTM): the weights are packed once per call; a team of threads runs the
loop, each thread owning a range of hidden units, with one barrier per step; per step the
products x_t W_ih + h W_hh of a few rows and a thread's units go into a small tile that stays in
L1, and their gates are formed at once; the weight gradient is formed after blocks of steps as
one larger product instead of once per step. The GEMM is its own micro-kernel, AVX-512 where the
CPU has it and AVX2/FMA elsewhere (`LSTM_JAX_NATIVE_ISA`): nothing but libstdc++ is linked. The
semantics (masks, resets, recurrent dropout, direction) are `fused.fused_lstm`'s, float32 and
float64.

Sharing the cores: every wait of the team (a barrier, a worker between calls, the caller for its
workers) spins for at most 30 microseconds, then sleeps on a futex. When other jobs hold the
cores, a waiting thread so hands its core to the thread it waits for instead of spinning out its
time slice (`barrier_sleeps()` counts those sleeps).

The C++ is compiled by `pip install` (setup.py, an optional extension: without a compiler the
install still succeeds). Where the library or AVX2/FMA is missing, `recurrence` warns once and
runs "fused" instead; `unavailable_reason()` says why.

Reproducibility: every output element is summed by one thread in a fixed order, one fused
multiply-add at a time, so the bits depend neither on the team's size (`LSTM_JAX_NATIVE_THREADS`,
default: the usable cores, at most `MAX_THREADS`) nor on the micro-kernel's instruction set nor
on the CPU (tests/lib/test_native.py), nor, by construction, on the compiler: setup.py turns off
floating-point contraction, so the only fused multiply-adds are the micro-kernels' explicit ones
(checked only between GCC 12's -O2 and -O3 builds, which gave the same bits; with contraction on
they gave other bits than with it off). The pipeline's
character models run it (`train.model.implementation`).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
import warnings
from functools import partial

import jax
import jax.numpy as jnp

from lstm_jax import portability
from lstm_jax.errors import ArgumentError

_EXTENSION = "lstm_jax.recurrence._native_lstm"
_LOADED: list = []  # the kernels' ctypes handle, kept so the library stays loaded
THREADS_ENV = "LSTM_JAX_NATIVE_THREADS"
ISA_ENV = "LSTM_JAX_NATIVE_ISA"
_ISAS = {"avx2": 1, "avx512": 2}  # as lstm_native_set_isa numbers them
MAX_THREADS = 8  # a step of the recurrence is too short to share among many more threads
_TARGETS = {
    (kind, dtype): f"lstm_jax_native_{kind}_{dtype}" for kind in ("forward", "backward") for dtype in ("f32", "f64")
}


@functools.cache
def unavailable_reason() -> str | None:
    """None when the native kernels are loaded and registered with XLA, else why not (one line).
    The first call loads them and starts their threads (`team_size()`)."""
    threads, isa_wanted = _threads_wanted(), _isa_wanted()  # a bad value is an error anywhere
    check_isa_request(isa_wanted, portability.cpu_flags())
    missing = {"avx2", "fma"} - portability.cpu_flags()
    if missing:
        return f"the CPU lacks {sorted(missing)} (the kernels are built for AVX2 and FMA)"
    spec = importlib.util.find_spec(_EXTENSION)
    if spec is None or spec.origin is None:
        return "the C++ extension was not built (pip install needs a C++ compiler; see setup.py)"
    try:
        kernels = ctypes.CDLL(spec.origin)
    except OSError as err:
        return f"loading the native kernels failed: {err}"
    kernels.lstm_native_set_threads(threads)
    if kernels.lstm_native_set_isa(_ISAS.get(isa_wanted, 0)) < 0:  # the OS does not save AVX-512 state
        raise ArgumentError(f"{ISA_ENV}: expected avx2 here (the kernels cannot use AVX-512), found {isa_wanted!r}")
    for (kind, dtype), name in _TARGETS.items():
        symbol = getattr(kernels, f"LstmNative{kind.capitalize()}{dtype.upper()}")
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(symbol), platform="cpu")
    _LOADED.append(kernels)
    return None


def _threads_wanted() -> int:
    """The team's size: `LSTM_JAX_NATIVE_THREADS`, else the cores this process may use (at most
    `MAX_THREADS`). It changes the speed, never a result bit."""
    value = os.environ.get(THREADS_ENV)
    if value is None:
        return max(1, min(MAX_THREADS, len(os.sched_getaffinity(0))))
    if not value.isdigit() or int(value) < 1:
        raise ArgumentError(f"{THREADS_ENV}: expected a whole number of threads >= 1, found {value!r}")
    return int(value)


def _isa_wanted() -> str | None:
    """The micro-kernel's instruction set: `LSTM_JAX_NATIVE_ISA` ("avx2" or "avx512"), else None
    (AVX-512 where the CPU has it). It changes the speed, never a result bit."""
    value = os.environ.get(ISA_ENV)
    if value is not None and value not in _ISAS:
        raise ArgumentError(f"{ISA_ENV}: expected one of {sorted(_ISAS)}, found {value!r}")
    return value


def check_isa_request(wanted: str | None, cpu_flags: set[str]) -> None:
    """One-line ArgumentError when `LSTM_JAX_NATIVE_ISA` asks for AVX-512 on a CPU without it."""
    if wanted == "avx512" and "avx512f" not in cpu_flags:
        raise ArgumentError(f"{ISA_ENV}: expected avx2 on this CPU (it lacks AVX-512), found 'avx512'")


def isa() -> str | None:
    """The instruction set of the kernels' matrix products: "avx512" or "avx2" (None where the
    native kernels are unavailable)."""
    if not available():
        return None
    return {number: name for name, number in _ISAS.items()}[_LOADED[0].lstm_native_isa()]


def last_call_threads() -> int:
    """How many threads the last native call used (0 where unavailable): at most `team_size()`,
    fewer for small layers (one per 2^18 multiply-adds of a step)."""
    return _LOADED[0].lstm_native_last_active() if available() else 0


def barrier_sleeps() -> int:
    """How many of the team's barrier waits so far outlasted their short spin and slept (0 where
    unavailable). Sleeping hands the core to the thread being waited for: many sleeps mean the
    team shares its cores with other work."""
    if not available():
        return 0
    _LOADED[0].lstm_native_barrier_sleeps.restype = ctypes.c_int64
    return _LOADED[0].lstm_native_barrier_sleeps()


def last_forward_swept() -> int:
    """How many slices of residuals the last native forward with a backward pass had to fault
    in before its loop (0: every page was already in memory, so it skipped the sweep; 0 also
    where unavailable)."""
    return _LOADED[0].lstm_native_last_swept() if available() else 0


def _poison_residuals(on: bool) -> None:
    """Tests only: the forward then fills its residuals with NaN before its loop, every call, so
    any residual the loop leaves unwritten (which warm pages, swept or not, would hide) shows up
    in the gradients."""
    if available():
        _LOADED[0].lstm_native_set_poison(int(on))


def team_size() -> int:
    """The number of threads the native kernels run on (0 where they are unavailable)."""
    return _LOADED[0].lstm_native_threads() if available() else 0


def available() -> bool:
    """Whether "native" runs its own kernels here (loading them on the first call)."""
    return unavailable_reason() is None


@functools.cache
def warn_unavailable() -> None:
    """Warn (once per process) that "native" runs "fused" here, and why."""
    warnings.warn(f'implementation="native" runs "fused" here: {unavailable_reason()}', RuntimeWarning, stacklevel=3)


def _flags_and_fillers(x, h0, mask, reset, h_keep):
    """The FFI calls take every input as an array: absent ones become dummies (flagged off)."""
    steps, batch = x.shape[:2]
    no_steps = jnp.zeros((steps, batch), jnp.uint8)
    flags = dict(has_mask=mask is not None, has_reset=reset is not None, has_keep=h_keep is not None)
    mask = no_steps if mask is None else mask.astype(jnp.uint8)
    reset = no_steps if reset is None else reset.astype(jnp.uint8)
    h_keep = jnp.ones_like(h0) if h_keep is None else h_keep.astype(h0.dtype)
    return flags, mask, reset, h_keep


def _dtype_name(dtype) -> str:
    names = {jnp.dtype(jnp.float32): "f32", jnp.dtype(jnp.float64): "f64"}
    if jnp.dtype(dtype) not in names:
        raise ArgumentError(f'implementation="native": expected float32 or float64 inputs, found {jnp.dtype(dtype)}')
    return names[jnp.dtype(dtype)]


def _forward(x, kernel, bias, c0, h0, mask, h_keep, reset, reverse, save):
    """-> (y, c_T, h_T, xh [T, B, F + H], gates [T, B, 4H], c_prev [T, B, H]), xh: [x_t, h_in]
    per step (h_in: h after reset and h_keep, the operand of the step's product); without `save`
    (no backward pass follows) the last three are empty and never written."""
    steps, batch, features = x.shape
    hidden, dtype = c0.shape[-1], x.dtype
    flags, mask, reset, h_keep = _flags_and_fillers(x, h0, mask, reset, h_keep)
    shapes = [(steps, batch, hidden), (batch, hidden), (batch, hidden)]
    if save:
        shapes += [(steps, batch, features + hidden), (steps, batch, 4 * hidden), (steps, batch, hidden)]
    else:
        shapes += [(0,)] * 3
    call = jax.ffi.ffi_call(
        _TARGETS["forward", _dtype_name(dtype)],
        [jax.ShapeDtypeStruct(s, dtype) for s in shapes],
        vmap_method="sequential",
    )
    return call(x, kernel, bias, c0, h0, mask, reset, h_keep, reverse=bool(reverse), save=save, **flags)


@partial(jax.custom_vjp, nondiff_argnums=(8,))
def _native(x, kernel, bias, c0, h0, mask, h_keep, reset, reverse):
    y, c, h, *_ = _forward(x, kernel, bias, c0, h0, mask, h_keep, reset, reverse, save=False)
    return (c, h), y


def _native_fwd(x, kernel, bias, c0, h0, mask, h_keep, reset, reverse):
    y, c, h, xh, gates, c_prev = _forward(x, kernel, bias, c0, h0, mask, h_keep, reset, reverse, save=True)
    return ((c, h), y), (kernel, xh, gates, c_prev, mask, h_keep, reset)


def _native_bwd(reverse, residuals, cotangents):
    kernel, xh, gates, c_prev, mask, h_keep, reset = residuals
    (dc_last, dh_last), dy = cotangents
    steps, batch, hidden = dy.shape
    flags, mask_u8, reset_u8, keep = _flags_and_fillers(dy, dh_last, mask, reset, h_keep)
    x_shape = (steps, batch, kernel.shape[0] - hidden)
    shapes = [x_shape, kernel.shape, (kernel.shape[-1],), (batch, hidden), (batch, hidden)]
    call = jax.ffi.ffi_call(
        _TARGETS["backward", _dtype_name(dy.dtype)],
        [jax.ShapeDtypeStruct(s, dy.dtype) for s in shapes],
        vmap_method="sequential",
    )
    dx, d_kernel, d_bias, dc0, dh0 = call(
        kernel, xh, gates, c_prev, mask_u8, reset_u8, keep, dy, dc_last, dh_last, reverse=bool(reverse), **flags
    )
    return dx, d_kernel, d_bias, dc0, dh0, None, None, None


_native.defvjp(_native_fwd, _native_bwd)


def native_lstm(x, kernel_ih, kernel_hh, bias, c0, h0, mask=None, h_keep=None, reverse=False, reset=None):
    """The LSTM recurrence in C++, with `fused.fused_lstm`'s arguments and results (no batch
    groups, unroll, mixed precision or zoneout): x float[T, B, F] time-major, kernel_ih
    float[F, 4H], kernel_hh float[H, 4H], bias float[4H], c0, h0 float[B, H], mask and reset
    bool[T, B] (reset in scan order), h_keep float[B, H]. Returns ((c_T, h_T), outputs
    float[T, B, H]). Call only when `available()`."""
    dtypes = {jnp.dtype(a.dtype) for a in (x, kernel_ih, kernel_hh, bias, c0, h0)}
    if len(dtypes) != 1:
        raise ArgumentError(f'implementation="native": expected one float dtype for inputs and weights, found {dtypes}')
    kernel = jnp.concatenate([kernel_ih, kernel_hh], axis=0)  # its gradient splits by autodiff
    return _native(x, kernel, bias, c0, h0, mask, h_keep, reset, reverse)


__all__ = ["available", "native_lstm", "team_size", "unavailable_reason", "warn_unavailable"]
