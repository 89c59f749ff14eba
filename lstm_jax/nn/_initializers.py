"""Weight initialisers whose values are the same bits on every machine.

`flax.linen.initializers.orthogonal` takes the QR decomposition of a Gaussian matrix with
`jnp.linalg.qr`, which on the CPU calls LAPACK through SciPy's OpenBLAS. OpenBLAS splits the work
between as many threads as there are cores and picks its kernels for the CPU at run time, so the
"same" initial recurrent weights differed between 1 and 2 cores (measured), and would between an
Intel and an AMD CPU. Here the orthonormal basis is computed by XLA instead (Gram-Schmidt, done
twice for float32 accuracy), which the portability pins make the same everywhere
(`lstm_jax.portability`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.jit  # compiled once per shape and dtype, however many layers are initialised
def orthonormal_columns(a: jax.Array) -> jax.Array:
    """float[m, k] (m >= k) -> the Q of a = QR with R's diagonal positive: the columns of `a`
    orthonormalised in order, by classical Gram-Schmidt applied twice ("twice is enough",
    Giraud et al. 2005): Q^T Q = I to a few float32 ulps for well-conditioned `a`."""
    m, k = a.shape
    if m < k:
        raise ValueError(f"orthonormal_columns: expected at least as many rows as columns, found shape {a.shape}")

    def step(j, q):
        v = jax.lax.dynamic_index_in_dim(a, j, axis=1, keepdims=False)
        for _ in range(2):  # columns j.. of q are still zero, so this projects on the first j only
            v = v - q @ (q.T @ v)
        v = v / jnp.sqrt(jnp.sum(v * v))
        return jax.lax.dynamic_update_index_in_dim(q, v, j, axis=1)

    return jax.lax.fori_loop(0, k, step, jnp.zeros_like(a))


def orthogonal(scale: float = 1.0):
    """An initialiser of 2-D float[rows, cols] weights with orthonormal rows or columns
    (whichever are fewer), distributed as flax's `orthogonal()` (Saxe et al. 2014), computed
    without LAPACK (see the module docstring)."""

    def init(key, shape, dtype=jnp.float32):
        if len(shape) != 2:
            raise ValueError(f"orthogonal: expected a 2-D shape, found {tuple(shape)}")
        rows, cols = shape
        a = jax.random.normal(key, (max(rows, cols), min(rows, cols)), dtype)
        q = orthonormal_columns(a)
        return scale * (q.T if rows < cols else q)

    return init
