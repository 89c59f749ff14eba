// Probe (issue 16): one LSTM layer's forward and backward as two XLA FFI calls around OpenBLAS sgemm.
// Time-major, gate order i, f, g, o; kernel W = [W_ih; W_hh] of shape [F+H, 4H]. Timing probe.
#include <algorithm>
#include <cstring>
#include <vector>
#include "xla/ffi/api/ffi.h"
namespace ffi = xla::ffi;
extern "C" void scipy_cblas_sgemm(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
enum { RowMajor = 101, NoTrans = 111, Trans = 112 };
static void gemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  scipy_cblas_sgemm(RowMajor, ta ? Trans : NoTrans, tb ? Trans : NoTrans, m, n, k, 1.f, a, lda, b, ldb, beta, c, ldc);
}
static inline float ftanh(float x) {  // Eigen's rational approximation of tanh (vectorizes)
  x = x > 7.90531110763549805f ? 7.90531110763549805f : x;
  x = x < -7.90531110763549805f ? -7.90531110763549805f : x;
  float x2 = x * x, p = -2.76076847742355e-16f, q = 1.19825839466702e-06f;
  p = p * x2 + 2.00018790482477e-13f; p = p * x2 - 8.60467152213735e-11f; p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f; p = p * x2 + 6.37261928875436e-04f; p = p * x2 + 4.89352455891786e-03f;
  q = q * x2 + 1.18534705686654e-04f; q = q * x2 + 2.26843463243900e-03f; q = q * x2 + 4.89352518554385e-03f;
  return x * p / q;
}
static inline float sig(float x) { return 0.5f * ftanh(0.5f * x) + 0.5f; }

// x[T,B,F] W[K,G] b[G] h0[B,H] c0[B,H] -> y[T,B,H] XH[T,B,K] A[T,B,G] C[T+1,B,H]
static ffi::Error Fwd(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> bias, ffi::Buffer<ffi::F32> h0,
                      ffi::Buffer<ffi::F32> c0, ffi::ResultBuffer<ffi::F32> y, ffi::ResultBuffer<ffi::F32> xh_out,
                      ffi::ResultBuffer<ffi::F32> a_out, ffi::ResultBuffer<ffi::F32> c_out) {
  auto d = x.dimensions();
  const int T = d[0], B = d[1], F = d[2], H = h0.dimensions()[1], K = F + H, G = 4 * H;
  const float *X = x.typed_data(), *W = w.typed_data(), *bb = bias.typed_data();
  float *Y = y->typed_data(), *XH = xh_out->typed_data(), *A = a_out->typed_data(), *C = c_out->typed_data();
  std::memcpy(C, c0.typed_data(), sizeof(float) * B * H);
  for (int t = 0; t < T; t++) {
    float* xh = XH + (size_t)t * B * K;
    const float* hp = t ? Y + (size_t)(t - 1) * B * H : h0.typed_data();
    for (int r = 0; r < B; r++) {
      std::memcpy(xh + r * K, X + ((size_t)t * B + r) * F, sizeof(float) * F);
      std::memcpy(xh + r * K + F, hp + r * H, sizeof(float) * H);
    }
    float* a = A + (size_t)t * B * G;
    gemm(false, false, B, G, K, xh, K, W, G, 0.f, a, G);
    const float* cp = C + (size_t)t * B * H;
    float* cn = C + (size_t)(t + 1) * B * H;
    float* yt = Y + (size_t)t * B * H;
    for (int r = 0; r < B; r++) {
      float* z = a + r * G;
#pragma omp simd
      for (int j = 0; j < H; j++) {
        float i = sig(z[j] + bb[j]), f = sig(z[H + j] + bb[H + j]), g = ftanh(z[2 * H + j] + bb[2 * H + j]),
              o = sig(z[3 * H + j] + bb[3 * H + j]);
        float c = f * cp[r * H + j] + i * g;
        cn[r * H + j] = c;
        z[j] = i; z[H + j] = f; z[2 * H + j] = g; z[3 * H + j] = o;
        yt[r * H + j] = o * ftanh(c);
      }
    }
  }
  return ffi::Error::Success();
}

// W XH A C dy dhT dcT -> dx[T,B,F] dW[K,G] db[G] dh0[B,H] dc0[B,H] dZ[T,B,G] (scratch)
static ffi::Error Bwd(ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> xh_in, ffi::Buffer<ffi::F32> a_in, ffi::Buffer<ffi::F32> c_in,
                      ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> dht, ffi::Buffer<ffi::F32> dct,
                      ffi::ResultBuffer<ffi::F32> dx, ffi::ResultBuffer<ffi::F32> dw, ffi::ResultBuffer<ffi::F32> db,
                      ffi::ResultBuffer<ffi::F32> dh0, ffi::ResultBuffer<ffi::F32> dc0) {
  auto d = dy.dimensions();
  const int T = d[0], B = d[1], H = d[2], G = 4 * H, K = w.dimensions()[0], F = K - H;
  const float *W = w.typed_data(), *XH = xh_in.typed_data(), *A = a_in.typed_data(), *C = c_in.typed_data(), *DY = dy.typed_data();
  float *DX = dx->typed_data(), *DW = dw->typed_data(), *DB = db->typed_data(), *DH = dh0->typed_data(), *DC = dc0->typed_data();
  static thread_local std::vector<float> dz_scratch;  // reused across calls: no fresh pages to fault in
  dz_scratch.resize((size_t)T * B * G);
  float* DZ = dz_scratch.data();
  std::memcpy(DH, dht.typed_data(), sizeof(float) * B * H);
  std::memcpy(DC, dct.typed_data(), sizeof(float) * B * H);
  float* dxh = new float[(size_t)B * K];
  for (int t = T - 1; t >= 0; t--) {
    const float* a = A + (size_t)t * B * G;
    const float* cp = C + (size_t)t * B * H;
    const float* cn = C + (size_t)(t + 1) * B * H;
    const float* dyt = DY + (size_t)t * B * H;
    float* dz = DZ + (size_t)t * B * G;
    for (int r = 0; r < B; r++) {
#pragma omp simd
      for (int j = 0; j < H; j++) {
        int q = r * H + j;
        float i = a[r * G + j], f = a[r * G + H + j], g = a[r * G + 2 * H + j], o = a[r * G + 3 * H + j];
        float tc = ftanh(cn[q]);
        float dh = DH[q] + dyt[q];
        float dc = DC[q] + dh * o * (1 - tc * tc);
        dz[r * G + j] = dc * g * i * (1 - i);
        dz[r * G + H + j] = dc * cp[q] * f * (1 - f);
        dz[r * G + 2 * H + j] = dc * i * (1 - g * g);
        dz[r * G + 3 * H + j] = dh * tc * o * (1 - o);
        DC[q] = dc * f;
      }
    }
    gemm(false, true, B, K, G, dz, G, W, G, 0.f, dxh, K);  // d[x_t, h_{t-1}] = dz W^T
    for (int r = 0; r < B; r++) {
      std::memcpy(DX + ((size_t)t * B + r) * F, dxh + r * K, sizeof(float) * F);
      std::memcpy(DH + r * H, dxh + r * K + F, sizeof(float) * H);
    }
  }
  delete[] dxh;
  gemm(true, false, K, G, T * B, XH, K, DZ, G, 0.f, DW, G);  // dW = [X, H]^T dZ, one matmul after the loop
  std::fill(DB, DB + G, 0.f);
  for (size_t n = 0; n < (size_t)T * B; n++)
#pragma omp simd
    for (int j = 0; j < G; j++) DB[j] += DZ[n * G + j];
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(LstmFwd, Fwd,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(LstmBwd, Bwd,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>());
