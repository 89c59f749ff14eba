#!/usr/bin/env bash
# Issue 16 probe: one LSTM layer's forward and backward as two jax.ffi calls around OpenBLAS sgemm,
# against lstm_jax's fused scan, each in its own fresh process, taking turns.
# Then the whole train step of benchmarks/speed_models.py with the layer swapped (full_step.py).
#   bash benchmarks/native_probe/build_and_run.sh [ROUNDS]
# Builds liblstm_ffi.so (git-ignored) with the machine's g++ against jax.ffi.include_dir() and the
# OpenBLAS that scipy's wheel bundles (scipy.libs/libscipy_openblas-*.so). A probe, not a feature:
# no masks, reverse, dropout or resets, float32 only, and a private library of scipy's to link to.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-$here/../../.venv/bin/python}
rounds=${1:-2}
include=$("$py" -c "import jax; print(jax.ffi.include_dir())")
libdir=$("$py" -c "import pathlib, scipy; print(pathlib.Path(scipy.__file__).parent.parent / 'scipy.libs')")
blas=$(cd "$libdir" && ls libscipy_openblas*.so | head -1)
g++ -O3 -march=haswell -ffast-math -fopenmp-simd -std=c++17 -shared -fPIC -w -I"$include" \
  -o "$here/liblstm_ffi.so" "$here/lstm_ffi.cc" -L"$libdir" -l:"$blas" -Wl,-rpath,"$libdir"
"$py" "$here/ffi_layer.py" check
for shape in "50 64 32 256 32" "25 128 32 512 32" "1000 32 123 320 8"; do
  for _ in $(seq "$rounds"); do
    for which in native fused; do "$py" "$here/ffi_layer.py" "$which" $shape | tail -1; done
  done
done
# The whole train step (embedding, layer, Dense, Adam) with the native layer, beside fused and torch.
for name in a c b; do
  for _ in $(seq "$rounds"); do
    for which in native fused torch; do "$py" "$here/full_step.py" "$which" "$name" | tail -1; done
  done
done
