// implementation="native": one LSTM layer and direction, forward and backward, each as one XLA FFI
// call that loops over time in C++ (see lstm_jax/native.py).
//
// Layout: time-major, gate order i, f, g, o, kernel W = [W_ih; W_hh] float[F + H, G = 4H].
// Semantics are those of lstm_jax/fused.py (masks keep the state and output zeros, a reset zeroes
// the state before its step, h_keep multiplies h before the matmul; scan order given by `reverse`).
//
// Design (oneDNN's, as torch's CPU LSTM): the weights are packed once per call into panels of
// NR columns, and one team of threads runs the whole loop, each thread owning a fixed range of
// hidden units (all four gates of them). Per step and thread:
// - forward: the product [x_t, h_in] W for a few rows and its units, into a tile of
//   rows x 4 gates x NR that stays in L1, then the gates of those units at once (no [B, G]
//   buffer round trip), then one barrier;
// - backward: the gate derivatives dz of its units, a barrier, then dh_in = dz W_hh^T for its
//   units. dx and dW = [x, h_in]^T dz are products over blocks of steps, each thread its own
//   columns.
// Each output element is summed by one thread in a fixed order, so the bits do not depend on the
// number of threads (tests/lib/test_native.py). The GEMM micro-kernel is AVX2/FMA (6 rows x 2
// vectors of accumulators, as BLIS's Haswell kernel), or AVX-512 where the CPU has it (8 rows x
// 2 panels, twice the multiply-adds per instruction) with the same bits, for float32 and float64.
#include <immintrin.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// ---------------------------------------------------------------------------------------------
// The micro-kernel: tile[MR, NR] += A[MR, K] P[K, NR], NR = two AVX registers (16 floats or
// 8 doubles), tile row i at tile + i * ldt. A's element (i, k) is at A + i * a_i + k * a_k (so A may be read transposed);
// P's row k at P + k * p_k (packed panels: p_k = NR). k runs in ascending order.
inline __m256 load(const float* p) { return _mm256_loadu_ps(p); }
inline __m256d load(const double* p) { return _mm256_loadu_pd(p); }
inline void store(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
inline void store(double* p, __m256d v) { _mm256_storeu_pd(p, v); }
inline __m256 broadcast(const float* p) { return _mm256_broadcast_ss(p); }
inline __m256d broadcast(const double* p) { return _mm256_broadcast_sd(p); }
inline __m256 fma(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
inline __m256d fma(__m256d a, __m256d b, __m256d c) { return _mm256_fmadd_pd(a, b, c); }

template <typename R>
constexpr int64_t kNR = 64 / sizeof(R);  // panel width: 16 floats, 8 doubles
constexpr int64_t kMR = 6;               // rows per micro-tile of the AVX2 kernel
template <typename R>
using Vec = decltype(load(static_cast<const R*>(nullptr)));

template <int MR, typename R>
void micro(int64_t K, const R* __restrict A, int64_t a_i, int64_t a_k, const R* __restrict P, int64_t p_k,
           R* __restrict tile, int64_t ldt) {
  constexpr int64_t V = kNR<R> / 2;
  Vec<R> c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
#define LSTM_ROWS(X) X(0, c00, c01) X(1, c10, c11) X(2, c20, c21) X(3, c30, c31) X(4, c40, c41) X(5, c50, c51)
#define LSTM_LOAD(i, lo, hi)         \
  if constexpr (MR > i) {            \
    lo = load(tile + i * ldt);        \
    hi = load(tile + i * ldt + V);    \
  }
  LSTM_ROWS(LSTM_LOAD)
  const R* a = A;
  const R* p = P;
  for (int64_t k = 0; k < K; k++, a += a_k, p += p_k) {
    const Vec<R> b0 = load(p), b1 = load(p + V);
#define LSTM_FMA(i, lo, hi)                   \
  if constexpr (MR > i) {                     \
    const Vec<R> x = broadcast(a + i * a_i); \
    lo = fma(x, b0, lo);                      \
    hi = fma(x, b1, hi);                      \
  }
    LSTM_ROWS(LSTM_FMA)
  }
#define LSTM_STORE(i, lo, hi)        \
  if constexpr (MR > i) {            \
    store(tile + i * ldt, lo);       \
    store(tile + i * ldt + V, hi);   \
  }
  LSTM_ROWS(LSTM_STORE)
#undef LSTM_ROWS
#undef LSTM_LOAD
#undef LSTM_FMA
#undef LSTM_STORE
}

// micro for m <= kMR rows.
template <typename R>
void micro_rows_avx2(int64_t m, int64_t K, const R* A, int64_t a_i, int64_t a_k, const R* P, int64_t p_k, R* tile,
                     int64_t ldt) {
  switch (m) {
    case 6: return micro<6>(K, A, a_i, a_k, P, p_k, tile, ldt);
    case 5: return micro<5>(K, A, a_i, a_k, P, p_k, tile, ldt);
    case 4: return micro<4>(K, A, a_i, a_k, P, p_k, tile, ldt);
    case 3: return micro<3>(K, A, a_i, a_k, P, p_k, tile, ldt);
    case 2: return micro<2>(K, A, a_i, a_k, P, p_k, tile, ldt);
    case 1: return micro<1>(K, A, a_i, a_k, P, p_k, tile, ldt);
    default: return;
  }
}

// Two panels at once: tile[m, 2 NR] += A P2, the second panel at P + p_v and its tile columns at
// tile + t_v. With AVX2 it is the one-panel kernel twice (16 registers hold no more).
template <typename R>
void micro_rows2_avx2(int64_t m, int64_t K, const R* A, int64_t a_i, int64_t a_k, const R* P, int64_t p_k,
                      int64_t p_v, R* tile, int64_t ldt, int64_t t_v) {
  micro_rows_avx2(m, K, A, a_i, a_k, P, p_k, tile, ldt);
  micro_rows_avx2(m, K, A, a_i, a_k, P + p_v, p_k, tile + t_v, ldt);
}

// The same products with AVX-512 where the CPU has it: a panel row (NR) is one 512-bit register,
// and a micro-tile is kMR512 rows of two panels (16 accumulators; per k, two panel loads and
// kMR512 broadcasts feed 16 multiply-adds). Every tile element is still the same chain of fused
// multiply-adds over k in ascending order, each rounded once, so the bits are the AVX2 kernel's
// (tests/lib/test_native.py compares them); only the registers holding them differ.
constexpr int64_t kMR512 = 8;
constexpr int64_t kMaxMR = std::max(kMR, kMR512);  // the tiles are sized for either kernel
#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
inline __m512 load(const float* p) { return _mm512_loadu_ps(p); }
inline __m512d load(const double* p) { return _mm512_loadu_pd(p); }
inline void store(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
inline void store(double* p, __m512d v) { _mm512_storeu_pd(p, v); }
inline __m512 broadcast(const float* p) { return _mm512_set1_ps(*p); }
inline __m512d broadcast(const double* p) { return _mm512_set1_pd(*p); }
inline __m512 fma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
inline __m512d fma(__m512d a, __m512d b, __m512d c) { return _mm512_fmadd_pd(a, b, c); }

// tile[MR, NV panels] += A P: vector v of tile row i at tile + i * ldt + v * t_v, panel v at P + v * p_v.
template <int MR, int NV, typename R>
void micro(int64_t K, const R* __restrict A, int64_t a_i, int64_t a_k, const R* __restrict P, int64_t p_k,
           int64_t p_v, R* __restrict tile, int64_t ldt, int64_t t_v) {
  using V = decltype(load(static_cast<const R*>(nullptr)));
  V c[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) c[i][v] = load(tile + i * ldt + v * t_v);
  }
  const R* a = A;
  const R* p = P;
  for (int64_t k = 0; k < K; k++, a += a_k, p += p_k) {
    V b[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) b[v] = load(p + v * p_v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const V x = broadcast(a + i * a_i);
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) c[i][v] = fma(x, b[v], c[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) store(tile + i * ldt + v * t_v, c[i][v]);
  }
}

template <int NV, typename R>
void micro_rows(int64_t m, int64_t K, const R* A, int64_t a_i, int64_t a_k, const R* P, int64_t p_k, int64_t p_v,
                R* tile, int64_t ldt, int64_t t_v) {
  switch (m) {
    case 8: return micro<8, NV>(K, A, a_i, a_k, P, p_k, p_v, tile, ldt, t_v);
    case 7: return micro<7, NV>(K, A, a_i, a_k, P, p_k, p_v, tile, ldt, t_v);
    case 6: return micro<6, NV>(K, A, a_i, a_k, P, p_k, p_v, tile, ldt, t_v);
    case 5: return micro<5, NV>(K, A, a_i, a_k, P, p_k, p_v, tile, ldt, t_v);
    case 4: return micro<4, NV>(K, A, a_i, a_k, P, p_k, p_v, tile, ldt, t_v);
    case 3: return micro<3, NV>(K, A, a_i, a_k, P, p_k, p_v, tile, ldt, t_v);
    case 2: return micro<2, NV>(K, A, a_i, a_k, P, p_k, p_v, tile, ldt, t_v);
    case 1: return micro<1, NV>(K, A, a_i, a_k, P, p_k, p_v, tile, ldt, t_v);
    default: return;
  }
}
template <typename R>
void rows1(int64_t m, int64_t K, const R* A, int64_t a_i, int64_t a_k, const R* P, int64_t p_k, R* tile,
           int64_t ldt) {
  micro_rows<1>(m, K, A, a_i, a_k, P, p_k, 0, tile, ldt, 0);
}
template <typename R>
void rows2(int64_t m, int64_t K, const R* A, int64_t a_i, int64_t a_k, const R* P, int64_t p_k, int64_t p_v,
           R* tile, int64_t ldt, int64_t t_v) {
  micro_rows<2>(m, K, A, a_i, a_k, P, p_k, p_v, tile, ldt, t_v);
}
}  // namespace avx512
#pragma GCC pop_options

// The kernel in use: AVX-512 where the CPU has it, unless lstm_native_set_isa chose AVX2.
enum Isa : int { kAvx2 = 1, kAvx512 = 2 };
inline bool cpu_has_avx512() { return __builtin_cpu_supports("avx512f"); }
std::atomic<int> g_isa{0};  // 0: not chosen yet
inline int isa() {
  int chosen = g_isa.load(std::memory_order_relaxed);
  if (chosen == 0) {  // first use: the best the CPU has, unless lstm_native_set_isa chose first
    int expected = 0;
    g_isa.compare_exchange_strong(expected, cpu_has_avx512() ? kAvx512 : kAvx2, std::memory_order_relaxed);
    chosen = g_isa.load(std::memory_order_relaxed);
  }
  return chosen;
}
// rows: tile[m, NR] += A P (one panel); rows2: tile[m, 2 NR] += A [P, P + p_v] (two panels);
// m <= mr.
template <typename R>
struct Gemm {
  int64_t mr;
  void (*rows)(int64_t m, int64_t K, const R* A, int64_t a_i, int64_t a_k, const R* P, int64_t p_k, R* tile,
               int64_t ldt);
  void (*rows2)(int64_t m, int64_t K, const R* A, int64_t a_i, int64_t a_k, const R* P, int64_t p_k, int64_t p_v,
                R* tile, int64_t ldt, int64_t t_v);
};
template <typename R>
Gemm<R> gemm() {
  if (isa() == kAvx512) return {kMR512, avx512::rows1<R>, avx512::rows2<R>};
  return {kMR, micro_rows_avx2<R>, micro_rows2_avx2<R>};
}

// dst[0, n) = src[0, n) for n <= NR: a full panel row is two vector moves, not a memmove call.
template <typename R>
inline void copy_short(R* __restrict dst, const R* __restrict src, int64_t n) {
  if (n == kNR<R>) {
    for (int64_t j = 0; j < kNR<R>; j++) dst[j] = src[j];
  } else {
    for (int64_t j = 0; j < n; j++) dst[j] = src[j];
  }
}

// Packs columns [c0, c0 + n) of W[K, ldw] (n <= NR) as a panel [K, NR], zero-padded.
template <typename R>
void pack_columns(const R* W, int64_t ldw, int64_t K, int64_t c0, int64_t n, R* panel) {
  for (int64_t k = 0; k < K; k++) {
    R* row = panel + k * kNR<R>;
    copy_short(row, W + k * ldw + c0, n);
    for (int64_t j = n; j < kNR<R>; j++) row[j] = R(0);
  }
}
// Packs rows [r0, r0 + n) of W[rows, K] transposed (W^T's columns) as a panel [K, NR], zero-padded.
template <typename R>
void pack_rows(const R* W, int64_t K, int64_t r0, int64_t n, R* panel) {
  std::fill(panel, panel + K * kNR<R>, R(0));
  for (int64_t j = 0; j < n; j++) {
    const R* src = W + (r0 + j) * K;
    for (int64_t k = 0; k < K; k++) panel[k * kNR<R> + j] = src[k];
  }
}

// ---------------------------------------------------------------------------------------------
// Waiting without taking a busy core. A waiter spins for at most kSpin (a team member is usually
// microseconds behind), then sleeps on a futex, so that when more threads want to run than there
// are free cores (two jobs on two cores) a waiting thread hands its core to the thread it waits for
// instead of burning it. `Signal` is a 32-bit word that waiters watch for a change; the writer calls
// the kernel only when someone sleeps on it.
constexpr auto kSpin = std::chrono::microseconds(30);

class Signal {
 public:
  int load() const { return word_.load(std::memory_order_acquire); }
  // Returns once the word differs from `seen` (at once if it already does); whether it slept.
  bool wait_change(int seen) {
    if (load() != seen) return false;
    const auto until = std::chrono::steady_clock::now() + kSpin;
    for (int spins = 1; load() == seen; spins++) {
      _mm_pause();
      if (spins % 64 == 0 && std::chrono::steady_clock::now() > until) break;
    }
    bool slept = false;
    while (load() == seen) {
      slept = true;
      // Registered before the second look, both seq_cst: either the writer sees a sleeper and
      // wakes it, or this thread sees the new value and does not sleep.
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      if (word_.load(std::memory_order_seq_cst) == seen) {
        syscall(SYS_futex, reinterpret_cast<int*>(&word_), FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
      }
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
    return slept;
  }
  void store(int value) {
    word_.store(value, std::memory_order_seq_cst);
    wake();
  }
  int add(int delta) {
    const int value = word_.fetch_add(delta, std::memory_order_seq_cst) + delta;
    wake();
    return value;
  }

 private:
  void wake() {
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      syscall(SYS_futex, reinterpret_cast<int*>(&word_), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
    }
  }
  static_assert(sizeof(std::atomic<int>) == sizeof(int), "a futex is a plain int");
  std::atomic<int> word_{0};
  std::atomic<int> sleepers_{0};
};

// The thread team: `threads - 1` workers plus the calling thread run one job at a time; inside a
// job, `sync()` is a barrier. Every wait (a worker for the next job, the caller for the workers,
// a barrier) is a `Signal`: a short spin, then sleep. A child process made by fork() has none of
// the parent's workers: it starts its own at its first call.
class Team {
 public:
  static Team& get() {
    static Team* team = [] {
      auto* t = new Team;  // never destroyed: workers may still sleep in it at exit
      pthread_atfork(nullptr, nullptr, [] { Team::get().forget_workers(); });
      return t;
    }();
    return *team;
  }
  void set_threads(int n) {
    std::lock_guard<std::mutex> lock(call_mutex);
    stop_workers();
    threads_ = std::max(1, n);
  }
  int threads() const { return threads_; }
  int last_active() const { return active_; }  // threads the last call used (for the tests)
  std::mutex call_mutex;  // one call at a time owns the team (XLA may run two directions at once)

  // Runs job(thread, active) on the first `active` threads of the team (the others skip it);
  // returns when all are done.
  void run(const std::function<void(int, int)>& job, int active) {
    active_ = std::max(1, std::min(active, threads_));
    while (static_cast<int>(workers_.size()) < threads_ - 1) {
      const int t = static_cast<int>(workers_.size()) + 1;
      const int seen = generation_.load();  // the job below is news to it
      workers_.push_back(new std::thread([this, t, seen] { worker(t, seen); }));
    }
    job_ = &job;
    done_.store(0);
    generation_.add(1);
    job(0, active_);
    for (int done = done_.load(); done != threads_ - 1; done = done_.load()) done_.wait_change(done);
  }
  // The barrier inside a job: the last of the `active` threads to arrive resets the count and
  // advances the phase that the others wait on.
  void sync() {
    const int phase = barrier_phase_.load();
    if (barrier_count_.fetch_add(1, std::memory_order_acq_rel) == active_ - 1) {
      barrier_count_.store(0, std::memory_order_relaxed);
      barrier_phase_.store(phase + 1);
      return;
    }
    if (barrier_phase_.wait_change(phase)) barrier_sleeps_.fetch_add(1, std::memory_order_relaxed);
  }
  // Barrier waits that outlasted the spin and slept, since the process started (for the tests).
  int64_t barrier_sleeps() const { return barrier_sleeps_.load(std::memory_order_relaxed); }

 private:
  void worker(int t, int seen) {
    while (true) {
      generation_.wait_change(seen);
      seen = generation_.load();
      if (stopping_.load(std::memory_order_acquire)) return;
      if (t < active_) (*job_)(t, active_);
      done_.add(1);
    }
  }
  void stop_workers() {
    if (workers_.empty()) return;
    stopping_.store(true, std::memory_order_release);
    generation_.add(1);
    for (std::thread* w : workers_) {
      w->join();
      delete w;
    }
    workers_.clear();
    stopping_.store(false, std::memory_order_release);
  }
  // In a fork()ed child the workers do not exist: drop their handles (leaked, never joined).
  void forget_workers() { workers_.clear(); }

  int threads_ = 1;
  int active_ = 1;
  std::vector<std::thread*> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  Signal generation_;  // a new job (or the order to stop)
  Signal done_;        // workers finished with the current job
  std::atomic<int> barrier_count_{0};
  Signal barrier_phase_;
  std::atomic<int64_t> barrier_sleeps_{0};
  std::atomic<bool> stopping_{false};
};

// How many threads a call uses: one per panel of units at most, and one per 2^18 multiply-adds
// of a step (below that, a barrier per step costs more than the thread saves). The bits do not
// depend on it.
inline int threads_for(int64_t chunks, int64_t step_macs) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(chunks, step_macs >> 18)));
}

// [begin, end) of `items` split evenly over `threads`.
inline std::pair<int64_t, int64_t> share(int64_t items, int t, int threads) {
  return {items * t / threads, items * (t + 1) / threads};
}

// Scratch kept between calls (under Team::call_mutex): fresh megabytes per call would be fresh
// mmap pages faulted in on every call (BENCHMARKS.md).
template <typename R>
std::vector<R>& scratch(int which) {
  static std::vector<R> buffers[4];
  return buffers[which];
}

// Per-thread scratch (the team's threads live as long as the process): the dz panels of the
// weight gradient.
template <typename R>
std::vector<R>& thread_scratch() {
  static thread_local std::vector<R> buffer;
  return buffer;
}

// Whether every page of [p, p + bytes) is in memory (mincore). XLA hands out the residuals in
// fresh memory on each call unless malloc kept the last call's (lstm_jax.memory): warm pages
// need no fault-in sweep. Any doubt (a failed call) answers false, which only costs the sweep.
inline bool resident(const void* p, size_t bytes) {
  if (bytes == 0) return true;
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + bytes;
  static thread_local std::vector<unsigned char> in_core;
  in_core.resize((end - begin + page - 1) / page);
  if (mincore(reinterpret_cast<void*>(begin), end - begin, in_core.data()) != 0) return false;
  return std::all_of(in_core.begin(), in_core.end(), [](unsigned char v) { return (v & 1) != 0; });
}

// Asks the kernel for transparent huge pages in the 2 MiB-aligned interior of [p, p + bytes),
// memory the forward is about to write in full: a fresh 2 MiB page is one fault, not 512. XLA
// hands out a step's buffers freshly mapped (glibc maps blocks this large anew on each call), and
// faulting them in page by page cost up to a fifth of a train step (BENCHMARKS.md). numpy does
// the same for its large arrays. Only a hint: where huge pages are off or none is free, the
// pages stay small; no value changes.
inline void advise_huge_pages(void* p, size_t bytes) {
  constexpr uintptr_t kHuge = uintptr_t(1) << 21;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

// Slices of residuals the last forward had to fault in (0: all were warm), for the tests.
std::atomic<int> g_swept{0};
// Tests only: sweep every slice, with NaN, so that a residual the loop failed to write shows.
std::atomic<bool> g_poison{false};

// Steps per block of the backward's products over steps: enough rows (T_chunk * B >= 1024) for an efficient matmul.
int64_t chunk_steps(int64_t batch, int64_t steps) {
  return std::max<int64_t>(1, std::min<int64_t>(steps, (1024 + batch - 1) / batch));
}

// ---------------------------------------------------------------------------------------------
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

// The gate loops are written for GCC's vectorizer: one restrict pointer per gate, no branch
// inside, and -fno-trapping-math (setup.py) so the clamp in tanh_ becomes a select; none of it
// changes a result bit.

// n units of one row of the forward: z (gate q's pre-activations at z + q * zs) gets the
// activations; c (in: the previous cell) gets the new cell; h_out the new h. bias: gate q's at
// bias + q * bs.
template <typename R>
__attribute__((always_inline)) inline void gates_forward(R* __restrict z, int64_t zs, const R* __restrict bias,
                                                         int64_t bs, R* __restrict c, R* __restrict h_out, int64_t n) {
  R* __restrict zi = z;
  R* __restrict zf = z + zs;
  R* __restrict zg = z + 2 * zs;
  R* __restrict zo = z + 3 * zs;
  const R *bi = bias, *bf = bias + bs, *bg = bias + 2 * bs, *bo = bias + 3 * bs;
#pragma omp simd
  for (int64_t j = 0; j < n; j++) {
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

// n units of one row of the backward (gate q at offset q * H in a and dz): from the activations
// a, the cell before the step and the cotangents of the new h (dh, output's dy included) and c
// (dc, updated in place to the previous cell's), dz.
template <typename R>
__attribute__((always_inline)) inline void gates_backward(const R* __restrict a, const R* __restrict c_before,
                                                          const R* __restrict dh_new, const R* __restrict dy,
                                                          R* __restrict dc, R* __restrict dz, int64_t H, int64_t n) {
  const R *ai = a, *af = a + H, *ag = a + 2 * H, *ao = a + 3 * H;
  R* __restrict dzi = dz;
  R* __restrict dzf = dz + H;
  R* __restrict dzg = dz + 2 * H;
  R* __restrict dzo = dz + 3 * H;
#pragma omp simd
  for (int64_t j = 0; j < n; j++) {
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

// The gate loops as built (AVX2) and, where the micro-kernel is AVX-512, for AVX-512: the same
// element-wise IEEE operations in the same order (no contraction, setup.py), so the same bits in
// registers twice as wide (tests/lib/test_native.py compares the two).
template <typename R>
struct Gates {
  void (*forward)(R* z, int64_t zs, const R* bias, int64_t bs, R* c, R* h_out, int64_t n);
  void (*backward)(const R* a, const R* c_before, const R* dh_new, const R* dy, R* dc, R* dz, int64_t H,
                   int64_t n);
};
#pragma GCC push_options
#pragma GCC target("avx512f,prefer-vector-width=512")
template <typename R>
void gates_forward_avx512(R* z, int64_t zs, const R* bias, int64_t bs, R* c, R* h_out, int64_t n) {
  gates_forward(z, zs, bias, bs, c, h_out, n);
}
template <typename R>
void gates_backward_avx512(const R* a, const R* c_before, const R* dh_new, const R* dy, R* dc, R* dz, int64_t H,
                           int64_t n) {
  gates_backward(a, c_before, dh_new, dy, dc, dz, H, n);
}
#pragma GCC pop_options
template <typename R>
Gates<R> gate_loops() {
  if (isa() == kAvx512) return {gates_forward_avx512<R>, gates_backward_avx512<R>};
  return {gates_forward<R>, gates_backward<R>};  // their out-of-line copies, built for AVX2
}

// ---------------------------------------------------------------------------------------------
template <ffi::DataType DT>
ffi::Error Forward(ffi::Buffer<DT> x, ffi::Buffer<DT> w, ffi::Buffer<DT> bias, ffi::Buffer<DT> c0,
                   ffi::Buffer<DT> h0, ffi::Buffer<ffi::U8> mask, ffi::Buffer<ffi::U8> reset, ffi::Buffer<DT> keep,
                   bool reverse, bool has_mask, bool has_reset, bool has_keep, bool save, ffi::ResultBuffer<DT> y,
                   ffi::ResultBuffer<DT> c_last, ffi::ResultBuffer<DT> h_last, ffi::ResultBuffer<DT> xh_seq,
                   ffi::ResultBuffer<DT> gates, ffi::ResultBuffer<DT> c_prev) {
  using R = ffi::NativeType<DT>;
  constexpr int64_t NR = kNR<R>;
  const auto dims = x.dimensions();
  const int64_t T = dims[0], B = dims[1], F = dims[2], H = c0.dimensions()[1], G = 4 * H;
  const R *X = x.typed_data(), *W = w.typed_data(), *bb = bias.typed_data(), *KP = keep.typed_data();
  const uint8_t *M = mask.typed_data(), *RS = reset.typed_data();
  R *Y = y->typed_data(), *C = c_last->typed_data(), *Hs = h_last->typed_data();
  R *XH = xh_seq->typed_data(), *A = gates->typed_data(), *CP = c_prev->typed_data();
  std::memcpy(C, c0.typed_data(), sizeof(R) * B * H);  // the running state lives in the outputs
  std::memcpy(Hs, h0.typed_data(), sizeof(R) * B * H);
  if (T == 0 || B == 0 || H == 0) return ffi::Error::Success();

  Team& team = Team::get();
  std::lock_guard<std::mutex> lock(team.call_mutex);
  // Units come in chunks of NR; chunk u's four gate panels (i, f, g, o), each [F + H, NR], lie
  // together in `packed`. A step's operand is [x_t, h_in] ([B, F + H]): one product per tile,
  // not one for x_t and one for h_in. Without `save` (inference) it alternates between two
  // scratch blocks.
  const int64_t chunks = (H + NR - 1) / NR, K = F + H;
  std::vector<R>& packed = scratch<R>(0);
  std::vector<R>& xh_scratch = scratch<R>(1);
  packed.resize(chunks * 4 * K * NR);
  xh_scratch.resize(save ? 0 : 2 * B * K);
  // Which of the residuals (A, XH, CP) and y are in memory already: the others get huge pages
  // asked for, and the sweep below looks at their slices only.
  bool warm[4] = {true, true, true, true};
  if (save) {
    g_swept.store(0);
    const std::pair<R*, int64_t> outputs[4] = {{A, G}, {XH, K}, {CP, H}, {Y, H}};
    for (int i = 0; i < 4; i++) {
      const size_t bytes = sizeof(R) * T * B * outputs[i].second;
      warm[i] = resident(outputs[i].first, bytes);
      if (!warm[i]) advise_huge_pages(outputs[i].first, bytes);
    }
  }
  std::function<void(int, int)> job = [&](int t_id, int threads) {
    const auto [u_begin, u_end] = share(chunks, t_id, threads);
    const auto [f_begin, f_end] = share(F, t_id, threads);  // this thread's features of x_t to copy
    const int64_t j_begin = u_begin * NR, j_end = std::min(H, u_end * NR);
    if (save) {  // fault in this thread's slice of the residuals' fresh pages in one sweep, not
                 // page by page from both threads inside the loop (each row is shared by all threads)
      const auto [row_begin, row_end] = share(T * B, t_id, threads);
      const std::pair<R*, int64_t> residuals[3] = {{A, G}, {XH, K}, {CP, H}};  // warm[0..2]'s order
      for (int i = 0; i < 3; i++) {
        const auto [buffer, width] = residuals[i];
        R *first = buffer + row_begin * width, *last = buffer + row_end * width;
        const bool poison = g_poison.load(std::memory_order_relaxed);
        if (poison || (!warm[i] && !resident(first, sizeof(R) * (last - first)))) {
          std::fill(first, last, poison ? std::numeric_limits<R>::quiet_NaN() : R(0));
          g_swept.fetch_add(1, std::memory_order_relaxed);
        }
      }
      team.sync();  // before any thread writes its columns of these rows
    }
    for (int64_t u = u_begin; u < u_end; u++) {
      for (int q = 0; q < 4; q++) {
        pack_columns(W, G, K, q * H + u * NR, std::min(NR, H - u * NR), packed.data() + (u * 4 + q) * K * NR);
      }
    }
    const Gemm<R> mm = gemm<R>();
    const Gates<R> gt = gate_loops<R>();
    alignas(64) R tile[kMaxMR * 4 * NR];
    alignas(64) R cell[NR];
    for (int64_t s = 0; s < T; s++) {
      const int64_t t = reverse ? T - 1 - s : s;
      R* xh = save ? XH + t * B * K : xh_scratch.data() + (s % 2) * B * K;
      const R* xt = X + t * B * F;
      // This thread's features of x_t, its units of h_in (reset and recurrent dropout applied)
      // and of the cell before the step.
      for (int64_t r = 0; r < B; r++) {
        std::copy(xt + r * F + f_begin, xt + r * F + f_end, xh + r * K + f_begin);
        R* dst = xh + r * K + F;
        R* hr = Hs + r * H;
        R* cr = C + r * H;
        if (has_reset && RS[t * B + r]) {
          std::fill(cr + j_begin, cr + j_end, R(0));
          std::fill(hr + j_begin, hr + j_end, R(0));
        }
        if (has_keep) {
          const R* kr = KP + r * H;
          for (int64_t j = j_begin; j < j_end; j++) dst[j] = hr[j] * kr[j];
        } else {
          std::copy(hr + j_begin, hr + j_end, dst + j_begin);
        }
        if (save) std::copy(cr + j_begin, cr + j_end, CP + (t * B + r) * H + j_begin);
      }
      team.sync();  // every thread reads all of [x_t, h_in]
      for (int64_t u = u_begin; u < u_end; u++) {
        const int64_t j0 = u * NR, n = std::min(NR, H - j0);
        const R* pu = packed.data() + u * 4 * K * NR;
        for (int64_t r0 = 0; r0 < B; r0 += mm.mr) {
          const int64_t m = std::min(mm.mr, B - r0);
          std::fill(tile, tile + m * 4 * NR, R(0));
          for (int q = 0; q < 4; q += 2) {  // gates q, q + 1; tile row i, gate q: tile + (i * 4 + q) * NR
            mm.rows2(m, K, xh + r0 * K, K, 1, pu + q * K * NR, NR, K * NR, tile + q * NR, 4 * NR, NR);
          }
          for (int64_t i = 0; i < m; i++) {
            const int64_t r = r0 + i;
            R* z = tile + i * 4 * NR;
            R* yr = Y + (t * B + r) * H + j0;
            if (!has_mask || M[t * B + r]) {
              gt.forward(z, NR, bb + j0, H, C + r * H + j0, yr, n);
              copy_short(Hs + r * H + j0, yr, n);
            } else {  // a masked step keeps the state (its gates are still stored) and outputs zeros
              copy_short(cell, C + r * H + j0, n);
              gt.forward(z, NR, bb + j0, H, cell, yr, n);
              std::fill(yr, yr + n, R(0));
            }
            if (save) {
              R* ar = A + (t * B + r) * G + j0;
              for (int q = 0; q < 4; q++) copy_short(ar + q * H, z + q * NR, n);
            }
          }
        }
      }
    }
  };
  team.run(job, threads_for(chunks, B * (F + H) * G));
  return ffi::Error::Success();
}

template <ffi::DataType DT>
ffi::Error Backward(ffi::Buffer<DT> w, ffi::Buffer<DT> xh_seq, ffi::Buffer<DT> gates,
                    ffi::Buffer<DT> c_prev, ffi::Buffer<ffi::U8> mask, ffi::Buffer<ffi::U8> reset,
                    ffi::Buffer<DT> keep, ffi::Buffer<DT> dy, ffi::Buffer<DT> dc_last, ffi::Buffer<DT> dh_last,
                    bool reverse, bool has_mask, bool has_reset, bool has_keep, ffi::ResultBuffer<DT> dx,
                    ffi::ResultBuffer<DT> dw, ffi::ResultBuffer<DT> db, ffi::ResultBuffer<DT> dc0,
                    ffi::ResultBuffer<DT> dh0) {
  using R = ffi::NativeType<DT>;
  constexpr int64_t NR = kNR<R>;
  const auto dims = dy.dimensions();
  const int64_t T = dims[0], B = dims[1], H = dims[2], G = 4 * H, F = w.dimensions()[0] - H;
  const R *W = w.typed_data(), *XH = xh_seq.typed_data();
  const R *A = gates.typed_data(), *CP = c_prev.typed_data(), *KP = keep.typed_data(), *DY = dy.typed_data();
  const R* W_hh = W + F * G;
  const uint8_t *M = mask.typed_data(), *RS = reset.typed_data();
  R *DX = dx->typed_data(), *DW = dw->typed_data(), *DB = db->typed_data(), *DC = dc0->typed_data();
  R* DH = dh0->typed_data();
  std::memcpy(DC, dc_last.typed_data(), sizeof(R) * B * H);  // the running cotangents of (c, h)
  std::memcpy(DH, dh_last.typed_data(), sizeof(R) * B * H);
  std::fill(DB, DB + G, R(0));
  std::fill(DW, DW + (F + H) * G, R(0));
  if (T == 0 || B == 0 || H == 0) {
    std::fill(DX, DX + T * B * F, R(0));
    return ffi::Error::Success();
  }
  if (!resident(DX, sizeof(R) * T * B * F)) advise_huge_pages(DX, sizeof(R) * T * B * F);  // written in full

  Team& team = Team::get();
  std::lock_guard<std::mutex> lock(team.call_mutex);
  // Panels: W_hh^T for chunk u of the units ([G, NR] each), then W_ih^T for chunk f of the
  // features (dx = dz W_ih^T). dz: two blocks of `chunk` steps, alternating (a thread may start
  // the next block while another still reads this one), padded for the panel loads past the end.
  const int64_t chunks = (H + NR - 1) / NR, f_chunks = (F + NR - 1) / NR, chunk = chunk_steps(B, T);
  std::vector<R>& packed = scratch<R>(2);
  std::vector<R>& dz_blocks = scratch<R>(3);
  packed.resize((chunks + f_chunks) * G * NR);
  dz_blocks.resize(2 * chunk * B * G + NR);
  R* const packed_ih = packed.data() + chunks * G * NR;
  std::function<void(int, int)> job = [&](int t_id, int threads) {
    const auto [u_begin, u_end] = share(chunks, t_id, threads);
    const auto [f_begin, f_end] = share(f_chunks, t_id, threads);
    const int64_t j_begin = u_begin * NR, j_end = std::min(H, u_end * NR), n_own = j_end - j_begin;
    for (int64_t u = u_begin; u < u_end; u++) pack_rows(W_hh, G, u * NR, std::min(NR, H - u * NR), packed.data() + u * G * NR);
    for (int64_t f = f_begin; f < f_end; f++) pack_rows(W, G, f * NR, std::min(NR, F - f * NR), packed_ih + f * G * NR);
    const Gemm<R> mm = gemm<R>();
    const Gates<R> gt = gate_loops<R>();
    alignas(64) R tile[kMaxMR * 2 * NR];  // row i: two panels' columns at tile + i * 2 * NR
    // tile[m, NR or 2 NR] += A P for panels first, first + 1 (`count` of them: 1 or 2) at P + p * p_v.
    auto rows12 = [&](int64_t count, int64_t m, int64_t K, const R* A_, int64_t a_i, int64_t a_k, const R* P,
                      int64_t p_v) {
      if (count == 2) return mm.rows2(m, K, A_, a_i, a_k, P, NR, p_v, tile, 2 * NR, NR);
      mm.rows(m, K, A_, a_i, a_k, P, NR, tile, 2 * NR);
    };
    // This thread's columns of the block's dz again, as panels [chunk * B, NR] (gate q of its
    // chunk u at dz_panels + ((u - u_begin) * 4 + q) * panel), written while a row of dz is still
    // in L1: packing them from dz's rows later read one line per row of dz (4 G bytes apart), from L3.
    const int64_t panel = chunk * B * NR;
    std::vector<R>& dz_panels = thread_scratch<R>();
    dz_panels.resize((u_end - u_begin) * 4 * panel);
    // dW[k_rows rows, this thread's columns] += a^T dz over the block's rows, a's element (row,
    // k) at a + row * lda + k, dz from dz_panels; a is read in place (a row of a tile is kc
    // elements lda apart). The rows run in blocks of kKC: a block (1024 rows and a remainder,
    // chunk_steps) in one piece, so that each dW tile (megabytes in all, from L3) is loaded and
    // stored once per block, not once per 256 rows (measured 1.6 % and 2.4 % faster at (a), (c)).
    auto weight_gradient = [&](const R* a, int64_t lda, int64_t k_rows, R* dw_rows, int64_t rows) {
      constexpr int64_t kKC = 1024;
      const int64_t k_blocks = (k_rows + mm.mr - 1) / mm.mr;
      for (int64_t u = u_begin; u < u_end; u++) {
        const int64_t n = std::min(NR, H - u * NR);
        for (int q = 0; q < 4; q += 2) {  // gates q and q + 1
          const int64_t c0 = q * H + u * NR;
          const R* b_panels = dz_panels.data() + ((u - u_begin) * 4 + q) * panel;
          for (int64_t r0 = 0; r0 < rows; r0 += kKC) {
            const int64_t kc = std::min(kKC, rows - r0);
            for (int64_t kb = 0; kb < k_blocks; kb++) {
              const int64_t k0 = kb * mm.mr, m = std::min(mm.mr, k_rows - k0);
              for (int64_t i = 0; i < m; i++) {
                for (int v = 0; v < 2; v++) {
                  R* dst = tile + i * 2 * NR + v * NR;
                  copy_short(dst, dw_rows + (k0 + i) * G + c0 + v * H, n);
                  std::fill(dst + n, dst + NR, R(0));
                }
              }
              // dW's lines of the next tile, while this one computes: dW (a thread's columns of
              // [F + H] rows) is megabytes, from L3, one line per row.
              for (int64_t i = k0 + mm.mr; i < std::min(k_rows, k0 + 2 * mm.mr); i++) {
                __builtin_prefetch(dw_rows + i * G + c0, 1);
                __builtin_prefetch(dw_rows + i * G + c0 + H, 1);
              }
              rows12(2, m, kc, a + r0 * lda + k0, 1, lda, b_panels + r0 * NR, panel);
              for (int64_t i = 0; i < m; i++) {
                for (int v = 0; v < 2; v++) copy_short(dw_rows + (k0 + i) * G + c0 + v * H, tile + i * 2 * NR + v * NR, n);
              }
            }
          }
        }
      }
    };
    // Steps in the reverse of the forward's order; a block holds consecutive t (ascending in memory).
    for (int64_t s = T - 1; s >= 0; s--) {
      const int64_t t = reverse ? T - 1 - s : s;
      const int64_t t_low = t - t % chunk;  // blocks are fixed ranges of t, whatever the direction
      R* dzb = dz_blocks.data() + ((t / chunk) % 2) * chunk * B * G;
      R* dz = dzb + (t - t_low) * B * G;
      for (int64_t r = 0; r < B; r++) {
        R* dzr = dz + r * G + j_begin;
        if (!has_mask || M[t * B + r]) {
          gt.backward(A + (t * B + r) * G + j_begin, CP + (t * B + r) * H + j_begin, DH + r * H + j_begin,
                         DY + (t * B + r) * H + j_begin, DC + r * H + j_begin, dzr, H, n_own);
        } else {  // a masked step passes (dh, dc) straight on: nothing reaches its gates
          for (int q = 0; q < 4; q++) std::fill(dzr + q * H, dzr + q * H + n_own, R(0));
        }
        for (int q = 0; q < 4; q++) {
          R* dbq = DB + q * H + j_begin;
          const R* dzq = dzr + q * H;
#pragma omp simd
          for (int64_t j = 0; j < n_own; j++) dbq[j] += dzq[j];
          R* dst = dz_panels.data() + q * panel + ((t - t_low) * B + r) * NR;
          for (int64_t u = u_begin; u < u_end; u++, dst += 4 * panel) {
            const int64_t n = std::min(NR, H - u * NR);
            copy_short(dst, dzq + (u - u_begin) * NR, n);
            std::fill(dst + n, dst + NR, R(0));
          }
        }
      }
      team.sync();  // every thread reads all of dz
      for (int64_t u = u_begin; u < u_end; u += 2) {  // dh_in = dz W_hh^T, this thread's units
        const int64_t count = std::min<int64_t>(2, u_end - u);
        for (int64_t r0 = 0; r0 < B; r0 += mm.mr) {
          const int64_t m = std::min(mm.mr, B - r0);
          std::fill(tile, tile + m * 2 * NR, R(0));
          rows12(count, m, G, dz + r0 * G, G, 1, packed.data() + u * G * NR, G * NR);
          for (int64_t v = 0; v < count; v++) {
            const int64_t j0 = (u + v) * NR, n = std::min(NR, H - j0);
            for (int64_t i = 0; i < m; i++) {
              const int64_t r = r0 + i;
              const R* z = tile + i * 2 * NR + v * NR;
              R* dhr = DH + r * H + j0;
              if (!has_mask || M[t * B + r]) {
                if (has_keep) {
                  for (int64_t j = 0; j < n; j++) dhr[j] = z[j] * KP[r * H + j0 + j];
                } else {
                  copy_short(dhr, z, n);
                }
              }
              if (has_reset && RS[t * B + r]) {  // the state this step saw was zero: nothing flows before it
                std::fill(dhr, dhr + n, R(0));
                std::fill(DC + r * H + j0, DC + r * H + j0 + n, R(0));
              }
            }
          }
        }
      }
      const int64_t t_high = std::min(T - 1, t_low + chunk - 1);
      if (t != (reverse ? t_high : t_low)) continue;
      // The block is complete (the sync above came after every thread's dz of its last step).
      const int64_t rows = (t_high - t_low + 1) * B;
      for (int64_t f = f_begin; f < f_end; f += 2) {  // dx = dz W_ih^T, this thread's features
        const int64_t count = std::min<int64_t>(2, f_end - f);
        for (int64_t r0 = 0; r0 < rows; r0 += mm.mr) {
          const int64_t m = std::min(mm.mr, rows - r0);
          std::fill(tile, tile + m * 2 * NR, R(0));
          rows12(count, m, G, dzb + r0 * G, G, 1, packed_ih + f * G * NR, G * NR);
          for (int64_t v = 0; v < count; v++) {
            const int64_t n = std::min(NR, F - (f + v) * NR);
            for (int64_t i = 0; i < m; i++) {
              copy_short(DX + (t_low * B + r0 + i) * F + (f + v) * NR, tile + i * 2 * NR + v * NR, n);
            }
          }
        }
      }
      weight_gradient(XH + t_low * B * (F + H), F + H, F + H, DW, rows);  // dW += [x, h_in]^T dz
    }
  };
  team.run(job, threads_for(chunks, B * (F + H) * G));
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
      .template Ret<ffi::Buffer<DT>>()  // [x_t, h_in] per step, h_in: h after reset and h_keep [T, B, F + H]
      .template Ret<ffi::Buffer<DT>>()  // gate activations [T, B, G]
      .template Ret<ffi::Buffer<DT>>();  // c before each step [T, B, H]
}

template <ffi::DataType DT>
constexpr auto BindBackward() {
  return ffi::Ffi::Bind()
      .template Arg<ffi::Buffer<DT>>()  // W
      .template Arg<ffi::Buffer<DT>>()  // [x_t, h_in] per step
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

// The team's size (from lstm_jax/native.py). The results do not depend on it.
extern "C" __attribute__((visibility("default"))) void lstm_native_set_threads(int threads) {
  Team::get().set_threads(threads);
}
extern "C" __attribute__((visibility("default"))) int lstm_native_threads() { return Team::get().threads(); }
extern "C" __attribute__((visibility("default"))) int lstm_native_last_active() { return Team::get().last_active(); }
extern "C" __attribute__((visibility("default"))) int64_t lstm_native_barrier_sleeps() {
  return Team::get().barrier_sleeps();
}
extern "C" __attribute__((visibility("default"))) int lstm_native_last_swept() { return g_swept.load(); }
extern "C" __attribute__((visibility("default"))) void lstm_native_set_poison(int on) { g_poison.store(on != 0); }

// The micro-kernel's instruction set: 0 picks the best the CPU has, 1 AVX2, 2 AVX-512 (returns
// -1, changing nothing, where the CPU lacks it). The results do not depend on it.
extern "C" __attribute__((visibility("default"))) int lstm_native_set_isa(int want) {
  if (want == kAvx512 && !cpu_has_avx512()) return -1;
  if (want != 0 && want != kAvx2 && want != kAvx512) return -1;
  std::lock_guard<std::mutex> lock(Team::get().call_mutex);
  g_isa.store(want == 0 ? (cpu_has_avx512() ? kAvx512 : kAvx2) : want, std::memory_order_relaxed);
  return g_isa.load(std::memory_order_relaxed);
}
extern "C" __attribute__((visibility("default"))) int lstm_native_isa() { return isa(); }
