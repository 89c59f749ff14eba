"""Issue 16 probe: one LSTM layer as two FFI calls (forward, backward) against lstm_jax's fused scan.

    python ffi_layer.py check                 gradients of both against each other (config (a) shapes)
    python ffi_layer.py native|fused T B F H [STEPS]   median ms of jit(grad) over STEPS calls

Built and run by build_and_run.sh. Inputs are time-major [T, B, F]; the loss is sum(y * dy) for a
fixed random dy, so the backward pass sees a dense cotangent as in training.
"""

import ctypes
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from lstm_jax.fused import fused_lstm

lib = ctypes.cdll.LoadLibrary(str(Path(__file__).parent / "liblstm_ffi.so"))
jax.ffi.register_ffi_target("lstm_fwd", jax.ffi.pycapsule(lib.LstmFwd), platform="cpu")
jax.ffi.register_ffi_target("lstm_bwd", jax.ffi.pycapsule(lib.LstmBwd), platform="cpu")


def f32(*shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def _forward_call(x, w, b, h0, c0):
    """(y [T,B,H], [x_t, h_{t-1}] [T,B,F+H], activations [T,B,4H], cell states [T+1,B,H])."""
    t, batch, f = x.shape
    h = h0.shape[1]
    out = (f32(t, batch, h), f32(t, batch, f + h), f32(t, batch, 4 * h), f32(t + 1, batch, h))
    return jax.ffi.ffi_call("lstm_fwd", out)(x, w, b, h0, c0)


@jax.custom_vjp
def native_lstm_state(x, wi, wh, b, h0, c0):
    """((c_T, h_T), y [T,B,H]), as `fused.fused_lstm` returns them."""
    y, _, _, c = _forward_call(x, jnp.concatenate([wi, wh]), b, h0, c0)
    return (c[-1], y[-1]), y


def _fwd(x, wi, wh, b, h0, c0):
    w = jnp.concatenate([wi, wh])
    y, xh, a, c = _forward_call(x, w, b, h0, c0)
    return ((c[-1], y[-1]), y), (w, xh, a, c)


def _bwd(res, cotangents):
    (dc_last, dh_last), dy = cotangents
    w, xh, a, c = res
    t, batch, h = dy.shape
    f = w.shape[0] - h
    out = (f32(t, batch, f), f32(f + h, 4 * h), f32(4 * h), f32(batch, h), f32(batch, h))
    dx, dw, db, dh0, dc0 = jax.ffi.ffi_call("lstm_bwd", out)(w, xh, a, c, dy, dh_last, dc_last)
    return dx, dw[:f], dw[f:], db, dh0, dc0


native_lstm_state.defvjp(_fwd, _bwd)


def native_lstm(x, wi, wh, b, h0, c0):
    return native_lstm_state(x, wi, wh, b, h0, c0)[1]


def main() -> None:
    which = sys.argv[1]
    t, batch, f, h = (int(v) for v in sys.argv[2:6]) if len(sys.argv) > 5 else (50, 64, 32, 256)
    steps = int(sys.argv[6]) if len(sys.argv) > 6 else 32
    k = jax.random.split(jax.random.key(0), 5)
    x = jax.random.uniform(k[0], (t, batch, f)) - 0.5
    wi = (jax.random.uniform(k[1], (f, 4 * h)) - 0.5) * 0.1
    wh = (jax.random.uniform(k[2], (h, 4 * h)) - 0.5) * 0.1
    b = (jax.random.uniform(k[4], (4 * h,)) - 0.5) * 0.1
    dy = (jax.random.uniform(k[3], (t, batch, h)) - 0.5) * 0.01
    zero = jnp.zeros((batch, h))

    def loss_native(wi, wh, b, x):
        return jnp.sum(native_lstm(x, wi, wh, b, zero, zero) * dy)

    def loss_fused(wi, wh, b, x):
        return jnp.sum(fused_lstm(x, wi, wh, b, zero, zero, None, None, unroll=2)[1] * dy)

    grad = {
        name: jax.jit(jax.grad(fn, argnums=(0, 1, 2, 3)))
        for name, fn in [("native", loss_native), ("fused", loss_fused)]
    }
    if which == "check":
        names = ["d kernel_ih", "d kernel_hh", "d bias", "d x"]
        for name, a, r in zip(names, grad["native"](wi, wh, b, x), grad["fused"](wi, wh, b, x)):
            error = float(jnp.max(jnp.abs(a - r)) / jnp.max(jnp.abs(r)))
            print(f"{name}: max |native - fused| / max |fused| = {error:.2e}")
        return
    g = grad[which]
    jax.block_until_ready(g(wi, wh, b, x))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        jax.block_until_ready(g(wi, wh, b, x))
        times.append((time.perf_counter() - start) * 1e3)
    times = sorted(times[1:])
    print(f"{which} T={t} B={batch} F={f} H={h} fwd+bwd: median {times[len(times) // 2]:.1f} ms (min {times[0]:.1f})")


if __name__ == "__main__":
    main()
