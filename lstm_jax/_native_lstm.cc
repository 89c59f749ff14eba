// implementation="native": one LSTM layer and direction, forward and backward, each as one XLA FFI
// call that loops over time in C++ around OpenBLAS's sgemm/dgemm (see lstm_jax/native.py).
//
// Layout: time-major, gate order i, f, g, o, kernel W = [W_ih; W_hh] float[F + H, G = 4H].
// Semantics are those of lstm_jax/fused.py (masks keep the state and output zeros, a reset zeroes
// the state before its step, h_keep multiplies h before the matmul; scan order given by `reverse`).
// As oneDNN's and cuDNN's RNNs do, only the recurrent product stays in the loop:
// - forward: x W_ih for all steps as one [T*B, F] x [F, G] product into the gates buffer before
//   the loop; per step h_in W_hh added to it ([B, H] x [H, G]) and the gates fused in one pass;
// - backward: per step the gate derivatives dz and dh_in = dz W_hh^T ([B, G] x [G, H]); dx,
//   dW_ih and dW_hh are formed every few steps as products over a block of steps (bounded
//   scratch, no [T, B, G] buffer besides the stored gates).
//
// BLAS comes as function pointers from Python (lstm_native_set_blas), so this library links to
// nothing but libstdc++ and needs only jaxlib's FFI headers to build.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// cblas_?gemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
using Sgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using Dgemm = void (*)(int, int, int, int, int, int, double, const double*, int, const double*, int, double, double*,
                       int);
Sgemm sgemm_ptr = nullptr;
Dgemm dgemm_ptr = nullptr;
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

// C[m, n] = A[m, k] B[k, n] (+ C if accumulate), row-major; ta / tb: A / B are stored transposed.
void gemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, bool accumulate,
          float* c, int ldc) {
  sgemm_ptr(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, m, n, k, 1.0f, a, lda, b, ldb,
            accumulate ? 1.0f : 0.0f, c, ldc);
}
void gemm(bool ta, bool tb, int m, int n, int k, const double* a, int lda, const double* b, int ldb, bool accumulate,
          double* c, int ldc) {
  dgemm_ptr(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, m, n, k, 1.0, a, lda, b, ldb,
            accumulate ? 1.0 : 0.0, c, ldc);
}

// tanh in float32 as a rational function (a minimax fit on [-7.9, 7.9], where float32 tanh
// saturates), so that the gate loops vectorize; XLA's CPU tanh is of the same kind. float64 keeps
// the libm tanh, which the float64 equivalence tests compare against autodiff.
inline float tanh_(float x) {
  x = std::min(std::max(x, -7.90531110763549805f), 7.90531110763549805f);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 - 8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return x * p / q;
}
inline double tanh_(double x) { return std::tanh(x); }
template <typename R>
inline R sigmoid_(R x) {  // as fused.py: one tanh form for all four gates
  return R(0.5) * tanh_(R(0.5) * x) + R(0.5);
}

// Scratch that lives as long as the thread: the backward's dz chunk and [dx, dh] rows. Fresh
// buffers of megabytes per call would be fresh mmap pages faulted in on every call (BENCHMARKS.md).
template <typename R>
std::vector<R>& scratch(int which) {
  static thread_local std::vector<R> buffers[3];
  return buffers[which];
}

// Steps per block of the backward's products over steps: enough rows (T_chunk * B >= 1024) for an efficient matmul.
int chunk_steps(int batch, int steps) { return std::max(1, std::min(steps, (1024 + batch - 1) / batch)); }

// The loops below are written for GCC's vectorizer: one restrict pointer per gate, no branch
// inside (masked rows are handled outside them), and -fno-trapping-math (setup.py) so the
// clamp in tanh_ becomes a select; none of it changes a result bit.

// One row of the forward: z holds the pre-activations [i, f, g, o] (x W_ih + h W_hh) and gets the
// activations; c (in: the previous cell) gets the new cell; h_out the new h.
template <typename R>
void gates_forward(R* __restrict z, const R* __restrict bias, R* __restrict c, R* __restrict h_out, int64_t H) {
  R* __restrict zi = z;
  R* __restrict zf = z + H;
  R* __restrict zg = z + 2 * H;
  R* __restrict zo = z + 3 * H;
  const R *bi = bias, *bf = bias + H, *bg = bias + 2 * H, *bo = bias + 3 * H;
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    const R i = sigmoid_(zi[j] + bi[j]), f = sigmoid_(zf[j] + bf[j]);
    const R g = tanh_(zg[j] + bg[j]), o = sigmoid_(zo[j] + bo[j]);
    const R cell = f * c[j] + i * g;
    zi[j] = i;
    zf[j] = f;
    zg[j] = g;
    zo[j] = o;
    c[j] = cell;
    h_out[j] = o * tanh_(cell);
  }
}

// One row of the backward: from the activations a, the cell before the step and the cotangents
// of the new h (dh, output's included) and c (dc, updated in place to the previous cell's), dz.
template <typename R>
void gates_backward(const R* __restrict a, const R* __restrict c_before, const R* __restrict dh_new,
                    const R* __restrict dy, R* __restrict dc, R* __restrict dz, int64_t H) {
  const R *ai = a, *af = a + H, *ag = a + 2 * H, *ao = a + 3 * H;
  R* __restrict dzi = dz;
  R* __restrict dzf = dz + H;
  R* __restrict dzg = dz + 2 * H;
  R* __restrict dzo = dz + 3 * H;
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    const R i = ai[j], f = af[j], g = ag[j], o = ao[j];
    const R tc = tanh_(f * c_before[j] + i * g);
    const R d_h = dh_new[j] + dy[j];
    const R d_c = dc[j] + d_h * o * (R(1) - tc * tc);
    dzi[j] = d_c * g * i * (R(1) - i);
    dzf[j] = d_c * c_before[j] * f * (R(1) - f);
    dzg[j] = d_c * i * (R(1) - g * g);
    dzo[j] = d_h * tc * o * (R(1) - o);
    dc[j] = d_c * f;
  }
}

template <ffi::DataType DT>
ffi::Error Forward(ffi::Buffer<DT> x, ffi::Buffer<DT> w, ffi::Buffer<DT> bias, ffi::Buffer<DT> c0,
                   ffi::Buffer<DT> h0, ffi::Buffer<ffi::U8> mask, ffi::Buffer<ffi::U8> reset, ffi::Buffer<DT> keep,
                   bool reverse, bool has_mask, bool has_reset, bool has_keep, bool save,
                   ffi::ResultBuffer<DT> y, ffi::ResultBuffer<DT> c_last, ffi::ResultBuffer<DT> h_last, ffi::ResultBuffer<DT> h_in_seq,
                   ffi::ResultBuffer<DT> gates, ffi::ResultBuffer<DT> c_prev) {
  using R = ffi::NativeType<DT>;
  const auto dims = x.dimensions();
  const int64_t T = dims[0], B = dims[1], F = dims[2], H = c0.dimensions()[1], G = 4 * H;
  const R *X = x.typed_data(), *W = w.typed_data(), *bb = bias.typed_data(), *KP = keep.typed_data();
  const R* W_hh = W + F * G;
  const uint8_t *M = mask.typed_data(), *RS = reset.typed_data();
  R *Y = y->typed_data(), *C = c_last->typed_data(), *Hs = h_last->typed_data();
  R *HIN = h_in_seq->typed_data(), *A = gates->typed_data(), *CP = c_prev->typed_data();
  std::memcpy(C, c0.typed_data(), sizeof(R) * B * H);  // the running state lives in the outputs
  std::memcpy(Hs, h0.typed_data(), sizeof(R) * B * H);
  // Without `save` (no backward pass will follow: inference) the three residual outputs are
  // empty and each step works in a [B, G] scratch, its x_t W_ih a product of its own.
  std::vector<R>& spare = scratch<R>(2);
  spare.resize(save ? H : H + B * H + B * G);
  R* step_h_in = spare.data() + H;
  R* step_gates = step_h_in + B * H;
  if (save && T > 0 && F > 0) {
    gemm(false, false, T * B, G, F, X, F, W, G, false, A, G);  // x W_ih, every step at once
  } else if (save) {
    std::fill(A, A + T * B * G, R(0));
  }
  for (int64_t s = 0; s < T; s++) {
    const int64_t t = reverse ? T - 1 - s : s;
    R* hin = save ? HIN + t * B * H : step_h_in;
    for (int64_t r = 0; r < B; r++) {
      if (has_reset && RS[t * B + r]) {
        std::fill(C + r * H, C + (r + 1) * H, R(0));
        std::fill(Hs + r * H, Hs + (r + 1) * H, R(0));
      }
      const R* h = Hs + r * H;
      if (has_keep) {
        for (int64_t j = 0; j < H; j++) hin[r * H + j] = h[j] * KP[r * H + j];
      } else {
        std::memcpy(hin + r * H, h, sizeof(R) * H);
      }
    }
    if (save) std::memcpy(CP + t * B * H, C, sizeof(R) * B * H);
    R* a = save ? A + t * B * G : step_gates;
    if (!save && F > 0) {
      gemm(false, false, B, G, F, X + t * B * F, F, W, G, false, a, G);  // x_t W_ih
    } else if (!save) {
      std::fill(a, a + B * G, R(0));
    }
    gemm(false, false, B, G, H, hin, H, W_hh, G, true, a, G);  // + h_in W_hh
    R* yt = Y + t * B * H;
    for (int64_t r = 0; r < B; r++) {
      if (!has_mask || M[t * B + r]) {
        gates_forward(a + r * G, bb, C + r * H, yt + r * H, H);
        std::memcpy(Hs + r * H, yt + r * H, sizeof(R) * H);
      } else {  // a masked step keeps the state (its gates are still stored) and outputs zeros
        R* cell = spare.data();
        std::memcpy(cell, C + r * H, sizeof(R) * H);
        gates_forward(a + r * G, bb, cell, yt + r * H, H);
        std::fill(yt + r * H, yt + (r + 1) * H, R(0));
      }
    }
  }
  return ffi::Error::Success();
}

template <ffi::DataType DT>
ffi::Error Backward(ffi::Buffer<DT> w, ffi::Buffer<DT> x, ffi::Buffer<DT> h_in_seq, ffi::Buffer<DT> gates,
                    ffi::Buffer<DT> c_prev, ffi::Buffer<ffi::U8> mask, ffi::Buffer<ffi::U8> reset,
                    ffi::Buffer<DT> keep, ffi::Buffer<DT> dy, ffi::Buffer<DT> dc_last, ffi::Buffer<DT> dh_last,
                    bool reverse, bool has_mask, bool has_reset, bool has_keep, ffi::ResultBuffer<DT> dx,
                    ffi::ResultBuffer<DT> dw, ffi::ResultBuffer<DT> db, ffi::ResultBuffer<DT> dc0,
                    ffi::ResultBuffer<DT> dh0) {
  using R = ffi::NativeType<DT>;
  const auto dims = dy.dimensions();
  const int64_t T = dims[0], B = dims[1], H = dims[2], G = 4 * H, F = w.dimensions()[0] - H;
  const R *W = w.typed_data(), *X = x.typed_data(), *HIN = h_in_seq.typed_data();
  const R *A = gates.typed_data(), *CP = c_prev.typed_data(), *KP = keep.typed_data(), *DY = dy.typed_data();
  const R* W_hh = W + F * G;
  const uint8_t *M = mask.typed_data(), *RS = reset.typed_data();
  R *DX = dx->typed_data(), *DW = dw->typed_data(), *DB = db->typed_data(), *DC = dc0->typed_data();
  R* DH = dh0->typed_data();
  std::memcpy(DC, dc_last.typed_data(), sizeof(R) * B * H);  // the running cotangents of (c, h)
  std::memcpy(DH, dh_last.typed_data(), sizeof(R) * B * H);
  std::fill(DB, DB + G, R(0));
  std::fill(DW, DW + (F + H) * G, R(0));
  const int64_t chunk = chunk_steps(B, T);
  std::vector<R>& dz_chunk = scratch<R>(0);
  std::vector<R>& dh_in = scratch<R>(1);
  dz_chunk.resize(chunk * B * G);
  dh_in.resize(B * H);
  // Steps in the reverse of the forward's order; a chunk holds consecutive t (ascending in memory).
  for (int64_t s = T - 1; s >= 0; s--) {
    const int64_t t = reverse ? T - 1 - s : s;
    const int64_t t_low = t - t % chunk;  // chunks are fixed blocks of t, whatever the direction
    R* dz = dz_chunk.data() + (t - t_low) * B * G;
    const R* a = A + t * B * G;
    const R* cp = CP + t * B * H;
    const R* dyt = DY + t * B * H;
    for (int64_t r = 0; r < B; r++) {
      if (!has_mask || M[t * B + r]) {
        gates_backward(a + r * G, cp + r * H, DH + r * H, dyt + r * H, DC + r * H, dz + r * G, H);
      } else {  // a masked step passes (dh, dc) straight on: nothing reaches its gates
        std::fill(dz + r * G, dz + (r + 1) * G, R(0));
      }
      const R* dzr = dz + r * G;
#pragma omp simd
      for (int64_t j = 0; j < G; j++) DB[j] += dzr[j];
    }
    gemm(false, true, B, H, G, dz, G, W_hh, G, false, dh_in.data(), H);  // dh_in = dz W_hh^T
    for (int64_t r = 0; r < B; r++) {
      R* dhr = DH + r * H;
      const R* row = dh_in.data() + r * H;
      if (!has_mask || M[t * B + r]) {
        if (has_keep) {
          for (int64_t j = 0; j < H; j++) dhr[j] = row[j] * KP[r * H + j];
        } else {
          std::memcpy(dhr, row, sizeof(R) * H);
        }
      }
      if (has_reset && RS[t * B + r]) {  // the state this step saw was zero: nothing flows before it
        std::fill(dhr, dhr + H, R(0));
        std::fill(DC + r * H, DC + (r + 1) * H, R(0));
      }
    }
    const int64_t t_high = std::min(T - 1, t_low + chunk - 1);
    if (t == (reverse ? t_high : t_low)) {  // the block is complete: its products over all its steps
      const int64_t rows = (t_high - t_low + 1) * B;
      if (F > 0) {
        gemm(false, true, rows, F, G, dz_chunk.data(), G, W, G, false, DX + t_low * B * F, F);  // dx = dz W_ih^T
        gemm(true, false, F, G, rows, X + t_low * B * F, F, dz_chunk.data(), G, true, DW, G);  // dW_ih += x^T dz
      }
      gemm(true, false, H, G, rows, HIN + t_low * B * H, H, dz_chunk.data(), G, true, DW + F * G, G);  // dW_hh
    }
  }
  return ffi::Error::Success();
}

template <ffi::DataType DT>
constexpr auto BindForward() {
  return ffi::Ffi::Bind()
      .template Arg<ffi::Buffer<DT>>()  // x [T, B, F]
      .template Arg<ffi::Buffer<DT>>()  // W [K, G]
      .template Arg<ffi::Buffer<DT>>()  // bias [G]
      .template Arg<ffi::Buffer<DT>>()  // c0 [B, H]
      .template Arg<ffi::Buffer<DT>>()  // h0 [B, H]
      .template Arg<ffi::Buffer<ffi::U8>>()  // mask [T, B]
      .template Arg<ffi::Buffer<ffi::U8>>()  // reset [T, B]
      .template Arg<ffi::Buffer<DT>>()  // h_keep [B, H]
      .template Attr<bool>("reverse")
      .template Attr<bool>("has_mask")
      .template Attr<bool>("has_reset")
      .template Attr<bool>("has_keep")
      .template Attr<bool>("save")  // store the residuals (the last three results; else empty)
      .template Ret<ffi::Buffer<DT>>()  // y [T, B, H]
      .template Ret<ffi::Buffer<DT>>()  // c_T [B, H]
      .template Ret<ffi::Buffer<DT>>()  // h_T [B, H]
      .template Ret<ffi::Buffer<DT>>()  // h_in (h after reset and h_keep) per step [T, B, H]
      .template Ret<ffi::Buffer<DT>>()  // gate activations [T, B, G]
      .template Ret<ffi::Buffer<DT>>();  // c before each step [T, B, H]
}

template <ffi::DataType DT>
constexpr auto BindBackward() {
  return ffi::Ffi::Bind()
      .template Arg<ffi::Buffer<DT>>()  // W
      .template Arg<ffi::Buffer<DT>>()  // x
      .template Arg<ffi::Buffer<DT>>()  // h_in per step
      .template Arg<ffi::Buffer<DT>>()  // gate activations
      .template Arg<ffi::Buffer<DT>>()  // c before each step
      .template Arg<ffi::Buffer<ffi::U8>>()  // mask
      .template Arg<ffi::Buffer<ffi::U8>>()  // reset
      .template Arg<ffi::Buffer<DT>>()  // h_keep
      .template Arg<ffi::Buffer<DT>>()  // dy [T, B, H]
      .template Arg<ffi::Buffer<DT>>()  // dc_T
      .template Arg<ffi::Buffer<DT>>()  // dh_T
      .template Attr<bool>("reverse")
      .template Attr<bool>("has_mask")
      .template Attr<bool>("has_reset")
      .template Attr<bool>("has_keep")
      .template Ret<ffi::Buffer<DT>>()  // dx
      .template Ret<ffi::Buffer<DT>>()  // dW
      .template Ret<ffi::Buffer<DT>>()  // db
      .template Ret<ffi::Buffer<DT>>()  // dc0
      .template Ret<ffi::Buffer<DT>>();  // dh0
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(LstmNativeForwardF32, Forward<ffi::F32>, BindForward<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(LstmNativeForwardF64, Forward<ffi::F64>, BindForward<ffi::F64>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(LstmNativeBackwardF32, Backward<ffi::F32>, BindBackward<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(LstmNativeBackwardF64, Backward<ffi::F64>, BindBackward<ffi::F64>());

extern "C" __attribute__((visibility("default"))) void lstm_native_set_blas(void* sgemm, void* dgemm) {
  sgemm_ptr = reinterpret_cast<Sgemm>(sgemm);
  dgemm_ptr = reinterpret_cast<Dgemm>(dgemm);
}
