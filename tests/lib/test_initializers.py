"""The orthogonal initialiser computed by XLA (issue 14: no LAPACK, whose threads and CPU kernels
change the bits) against flax's LAPACK-based one: same distribution, same matrix to rounding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.linen import initializers

from lstm_jax.nn._initializers import orthogonal, orthonormal_columns


@pytest.mark.parametrize("shape", [(256, 1024), (1024, 256), (7, 7), (1, 5), (5, 1)])
def test_orthogonal_matches_flax_qr_to_rounding_and_is_orthonormal(shape):
    key = jax.random.key(3)
    ours = np.asarray(orthogonal()(key, shape), np.float64)
    # flax: the same Gaussian matrix, QR by LAPACK, signs fixed so R's diagonal is positive
    theirs = np.asarray(initializers.orthogonal()(key, shape), np.float64)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)
    small = ours @ ours.T if shape[0] <= shape[1] else ours.T @ ours
    np.testing.assert_allclose(small, np.eye(min(shape)), atol=2e-6)


def test_orthonormal_columns_in_float64_is_exact_to_double_rounding():
    with jax.enable_x64(True):
        a = jax.random.normal(jax.random.key(0), (50, 20), jnp.float64)
        q = np.asarray(orthonormal_columns(a))
        np.testing.assert_allclose(q.T @ q, np.eye(20), atol=1e-14)
        r = q.T @ np.asarray(a)  # upper triangular with a positive diagonal: a = QR
        assert np.all(np.diag(r) > 0) and np.allclose(np.tril(r, -1), 0, atol=1e-13)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match=r"orthogonal: expected a 2-D shape, found \(2, 3, 4\)"):
        orthogonal()(jax.random.key(0), (2, 3, 4))
    with pytest.raises(ValueError, match="at least as many rows as columns"):
        orthonormal_columns(jnp.zeros((2, 3)))
