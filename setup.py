"""Builds the optional C++ kernels of implementation="native" (lstm_jax/recurrence/_native_lstm.cc).

Everything else about the package is in pyproject.toml. The extension needs a C++17 compiler and
jaxlib's XLA FFI headers (`jax.ffi.include_dir()`, from the build environment: the Makefile
installs with --no-build-isolation so that they are the headers of the jaxlib that will run it).
It is optional: where it cannot be built, the install goes on without it and "native" falls back
to "fused" with a warning (lstm_jax/recurrence/_native.py).
"""

from pathlib import Path

from setuptools import Extension, setup


def _ffi_include_dir() -> str | None:
    try:
        import jaxlib
    except ImportError:
        return None
    include = Path(jaxlib.__file__).parent / "include"
    return str(include) if (include / "xla" / "ffi" / "api" / "ffi.h").is_file() else None


_include = _ffi_include_dir()
_extensions = []
if _include is not None:
    _extensions.append(
        Extension(
            "lstm_jax.recurrence._native_lstm",
            sources=["lstm_jax/recurrence/_native_lstm.cc"],
            include_dirs=[_include],
            language="c++",
            # AVX2 + FMA, the ISA the pipeline pins XLA to. No -ffast-math, and -ffp-contract=off:
            # the only fused multiply-adds are the micro-kernels' explicit ones, so the gate math is
            # plain IEEE arithmetic that any compiler (GCC's version, clang) must reproduce bit for
            # bit, not a choice of which a*b+c to fuse. GCC vectorizes the gate loops only at -O3
            # with -fno-trapping-math (which lets a compare become a select; no result bit changes).
            extra_compile_args=[
                "-std=c++17",
                "-O3",
                "-mavx2",
                "-mfma",
                "-fno-trapping-math",
                "-ffp-contract=off",
                "-fopenmp-simd",
                "-Wno-attributes",
            ],
            optional=True,
        )
    )

setup(ext_modules=_extensions)
