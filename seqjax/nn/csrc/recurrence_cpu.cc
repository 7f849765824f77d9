// seqjax CPU kernels: the whole time loop of SimpleRNN, GRU and LSTM (forward and backward) in one
// XLA FFI custom call each, so the per-step cost is two small matmuls and the gate arithmetic, with
// no per-operation dispatch of XLA's while loop (benchmarks/NOTES.md, lever 7).
//
// Layouts (row-major, time-major): xs [T, B, F] inputs, W [F, G*H], b [G*H] (the input
// projection x_t W + b is computed per step, inside the loop); U [H, G*H]; carries [B, H];
// lengths [B] int32 (rows past their length keep their carry and output zeros, as
// seqjax.nn.recurrence.scan_recurrence does). With residuals the forward also stores the weight
// gradients' operand [h_{t-1}, x_t, 1] transposed ([H + F + 1, T, B]); the backward kernels return
// the gradients of the pre-activations dz; XLA then forms [dU; dW; db] as one matmul of the two,
// and dx = dz W^T. The recurrences below run B rows of the batch, whose rows are S apart in the
// [T, ., .] tensors (S = the whole batch; a call may run slices of it on several threads, each
// with its pointers at the slice's first row: Parallel).
// float32 runs a vectorised rational tanh (XLA's); float64 uses the C library (for gradient checks).
// Compiled at first use by seqjax/nn/engines/cpu_build.py, once per instruction set (ISA) variant,
// chosen at run time from the CPU's flags: "avx512" (-mavx512f/bw/vl/dq -mavx2 -mfma), "avx2"
// (-mavx2 -mfma) or "portable" (the compiler's baseline: SSE2 on x86-64, NEON on aarch64). The
// preprocessor picks the vector width and the GEMM register block per variant below, so that the
// accumulators fit the vector registers (an AVX-512-shaped 6 x 4 block of 64-byte vectors needs 48
// of AVX2's 16 ymm registers: the AVX2 build of that code was 26x slower, benchmarks/NOTES.md).
// No intrinsics: GCC/Clang vector extensions only, so every variant builds on any target.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Vector width in bytes, vector registers, and the widest GEMM panel (vectors per row) per ISA.
#if defined(__AVX512F__)
#define SEQJAX_ISA "avx512"
constexpr int kVecBytes = 64, kVecRegs = 32;
#elif defined(__AVX2__) && defined(__FMA__)
#define SEQJAX_ISA "avx2"
constexpr int kVecBytes = 32, kVecRegs = 16;
#else
#define SEQJAX_ISA "portable"
#if defined(__aarch64__)
constexpr int kVecBytes = 16, kVecRegs = 32;  // NEON: 32 x 128-bit registers
#else
constexpr int kVecBytes = 16, kVecRegs = 16;  // SSE2 (x86-64 baseline), or scalar code elsewhere
#endif
#endif
// Widest GEMM panel: 4 vectors a row with 32 registers (6 x 4 accumulators + 4 for a row of B),
// 2 with 16 (6 x 2 + 2: the classic 6 x 16-float AVX2 block).
#ifdef SEQJAX_MAX_NV  // experiments: -DSEQJAX_MAX_NV=3 -DSEQJAX_MAX_NV_ROWS=4
constexpr int kMaxNV = SEQJAX_MAX_NV;
#else
constexpr int kMaxNV = kVecRegs >= 32 ? 4 : 2;
#endif

template <typename T>
struct Vec {
  typedef T V __attribute__((vector_size(kVecBytes), aligned(sizeof(T))));
  static constexpr int W = kVecBytes / sizeof(T);
};

// C[MR rows, NV vectors] = Cin + A[MR, K] B[K, NV vectors]; row-major with leading dimensions
// (Cin may be C).
template <typename T, int MR, int NV>
inline void Accumulate(typename Vec<T>::V (&c)[MR][NV], const T* __restrict A, int64_t lda,
                       const T* __restrict B, int64_t ldb, int64_t K) {
  using V = typename Vec<T>::V;
  constexpr int W = Vec<T>::W;
  for (int64_t k = 0; k < K; ++k) {
    const T* b = B + k * ldb;
    V bv[NV];
    for (int j = 0; j < NV; ++j) bv[j] = *reinterpret_cast<const V*>(b + W * j);
    for (int r = 0; r < MR; ++r) {
      const T a = A[r * lda + k];
      for (int j = 0; j < NV; ++j) c[r][j] += a * bv[j];
    }
  }
}

// ... and optionally + A2[MR, K2] B2[K2, NV vectors] in the same pass (K2 = 0: none).
template <typename T, int MR, int NV>
inline void Block(const T* __restrict A, int64_t lda, const T* __restrict B, int64_t ldb,
                  const T* Cin, int64_t ldi, T* C, int64_t ldc, int64_t K, const T* A2 = nullptr,
                  int64_t lda2 = 0, const T* B2 = nullptr, int64_t ldb2 = 0, int64_t K2 = 0) {
  using V = typename Vec<T>::V;
  constexpr int W = Vec<T>::W;
  V c[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NV; ++j) c[r][j] = *reinterpret_cast<const V*>(Cin + r * ldi + W * j);
  Accumulate<T, MR, NV>(c, A, lda, B, ldb, K);
  if (K2 > 0) Accumulate<T, MR, NV>(c, A2, lda2, B2, ldb2, K2);
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NV; ++j) *reinterpret_cast<V*>(C + r * ldc + W * j) = c[r][j];
}

template <typename T, int NV>
inline void Panel(int64_t M, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
                  const T* Cin, int64_t ldi, T* C, int64_t ldc, const T* A2, int64_t lda2,
                  const T* B2, int64_t ldb2, int64_t K2) {
  int64_t i = 0;
  // Rows per block: MR x NV accumulators + NV vectors of B + 2 spare within the vector registers,
  // at most 8 (AVX-512: 6 x 4 (an 8 x 4 block spilled and ran ~10 % slower), 8 x 2, 8 x 1;
  // AVX2/SSE: 6 x 2, 8 x 1).
#ifdef SEQJAX_MAX_NV_ROWS
  constexpr int MR = NV == kMaxNV ? SEQJAX_MAX_NV_ROWS : std::min(8, (kVecRegs - NV - 2) / NV);
#else
  constexpr int MR = std::min(8, (kVecRegs - NV - 2) / NV);
#endif
  auto rows = [&](auto mr, int64_t i) {
    constexpr int R = decltype(mr)::value;
    Block<T, R, NV>(A + i * lda, lda, B, ldb, Cin + i * ldi, ldi, C + i * ldc, ldc, K,
                    A2 ? A2 + i * lda2 : nullptr, lda2, B2, ldb2, K2);
  };
  for (; i + MR <= M; i += MR) rows(std::integral_constant<int, MR>{}, i);
  if (i + 4 <= M) rows(std::integral_constant<int, 4>{}, i), i += 4;
  if (i + 2 <= M) rows(std::integral_constant<int, 2>{}, i), i += 2;
  if (i < M) rows(std::integral_constant<int, 1>{}, i);
}

// ---- elementwise functions, in place over n values ----
// float: tanh as the rational approximation XLA's CPU and GPU backends use (odd degree-13 over even
// degree-6 polynomial on [-7.905, 7.905], a few ulp), vectorised with GCC vector extensions (the
// ISA's width), and sigmoid(x) = 0.5 + 0.5 tanh(x / 2).
typedef Vec<float>::V VF;
constexpr int kWF = Vec<float>::W;

inline VF TanhV(VF x) {
  const VF c = VF{} + 7.90531110763549805f;
  VF xc = x > c ? c : x;
  xc = xc < -c ? -c : xc;
  const VF x2 = xc * xc;
  VF p = VF{} - 2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 - 8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  VF q = VF{} + 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  const VF r = xc * p / q;
  const VF ax = x < 0.0f ? -x : x;
  return ax < 0.0004f ? x : r;
}

inline VF SigmoidV(VF x) { return 0.5f + 0.5f * TanhV(0.5f * x); }

template <VF (*F)(VF)>
inline void ApplyF(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + kWF <= n; i += kWF) {
    VF* v = reinterpret_cast<VF*>(x + i);
    *v = F(*v);
  }
  if (i < n) {
    VF v = {};
    std::memcpy(&v, x + i, (n - i) * sizeof(float));
    v = F(v);
    std::memcpy(x + i, &v, (n - i) * sizeof(float));
  }
}

inline void Sigmoid(float* x, int64_t n) { ApplyF<SigmoidV>(x, n); }
inline void Tanh(float* x, int64_t n) { ApplyF<TanhV>(x, n); }
inline void Sigmoid(double* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 1.0 / (1.0 + std::exp(-x[i]));
}
inline void Tanh(double* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
}

// Scratch buffers start on a cache line: the threads' chunks of hidden units are multiples of 16
// values (64 bytes), so with aligned rows no cache line is written by two threads (false sharing
// measured: no speed-up from a second thread at H=128 with std::vector's 16-byte alignment).
template <typename T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64)));
  }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  bool operator==(const AlignedAllocator&) const { return true; }
  bool operator!=(const AlignedAllocator&) const { return false; }
};
template <typename T>
using Scratch = std::vector<T, AlignedAllocator<T>>;

template <typename T>
Scratch<T> Transpose(const T* a, int64_t rows, int64_t cols) {
  Scratch<T> t(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = a[r * cols + c];
  return t;
}

// The GEMM's column panels, in the order and widths it reads them: f(first column, width) for
// panels of kMaxNV vectors while they fit, then one of 2 vectors and one of 1 where they fit, then
// the last columns (fewer than a vector).
template <typename T, class F>
inline void ForPanels(int64_t n, F&& f) {
  constexpr int64_t W = Vec<T>::W, PW = kMaxNV * W;
  int64_t j = 0;
  for (; j + PW <= n; j += PW) f(j, PW);
  if constexpr (kMaxNV > 2) {
    if (j + 2 * W <= n) f(j, 2 * W), j += 2 * W;
  }
  if (j + W <= n) f(j, W), j += W;
  if (j < n) f(j, n - j);
}

// Columns [0, n) of a row-major [K, ldb] weight matrix, repacked once per call panel by panel as
// the GEMM reads them: panel (j, w) is [K, w] contiguous at j * K. The weights are read every time
// step; unpacked, the rows of a panel lie ldb apart (4 KiB at the main LSTM case), which maps them
// onto a few L1 sets. Measured on the per-step products (one core, benchmarks/NOTES.md, lever 12):
// AVX2 forward [32, 288] x [288, 1024] 78 -> 115 GFLOP/s, AVX-512 backward 196 -> 227 GFLOP/s.
template <typename T>
class PackedB {
 public:
  PackedB() = default;
  PackedB(const T* B, int64_t ldb, int64_t K, int64_t n) : K_(K), n_(n), buf_(K * n) {
    ForPanels<T>(n, [&](int64_t j, int64_t w) {
      T* out = buf_.data() + j * K;
      for (int64_t k = 0; k < K; ++k) std::memcpy(out + k * w, B + k * ldb + j, w * sizeof(T));
    });
  }
  const T* panel(int64_t j) const { return buf_.data() + j * K_; }
  int64_t K() const { return K_; }
  int64_t n() const { return n_; }

 private:
  int64_t K_ = 0, n_ = 0;
  Scratch<T> buf_;
};

// C[M, n] = Cin[M, n] + A[M, K] B[K, n] (+ A2[M, K2] B2[K2, n]) for packed B (and B2, of the same
// n columns); A, Cin and C row-major with leading dimensions (Cin may be C; ldi = 0 broadcasts
// one row, e.g. a bias).
template <typename T>
void GemmP(int64_t M, const T* A, int64_t lda, const PackedB<T>& B, const T* Cin, int64_t ldi,
           T* C, int64_t ldc, const T* A2 = nullptr, int64_t lda2 = 0,
           const PackedB<T>* B2 = nullptr) {
  constexpr int64_t W = Vec<T>::W;
  const int64_t K = B.K(), K2 = B2 ? B2->K() : 0;
  ForPanels<T>(B.n(), [&](int64_t j, int64_t w) {
    const T* b = B.panel(j);
    const T* b2 = B2 ? B2->panel(j) : nullptr;
    if (w == kMaxNV * W) {
      Panel<T, kMaxNV>(M, K, A, lda, b, w, Cin + j, ldi, C + j, ldc, A2, lda2, b2, w, K2);
    } else if (w == 2 * W) {
      Panel<T, 2>(M, K, A, lda, b, w, Cin + j, ldi, C + j, ldc, A2, lda2, b2, w, K2);
    } else if (w == W) {
      Panel<T, 1>(M, K, A, lda, b, w, Cin + j, ldi, C + j, ldc, A2, lda2, b2, w, K2);
    } else {
      for (int64_t i = 0; i < M; ++i) {
        T* c = C + i * ldc + j;
        for (int64_t jj = 0; jj < w; ++jj) c[jj] = Cin[i * ldi + j + jj];
        for (int64_t k = 0; k < K; ++k)
          for (int64_t jj = 0; jj < w; ++jj) c[jj] += A[i * lda + k] * b[k * w + jj];
        for (int64_t k = 0; k < K2; ++k)
          for (int64_t jj = 0; jj < w; ++jj) c[jj] += A2[i * lda2 + k] * b2[k * w + jj];
      }
    }
  });
}

inline bool Active(const int32_t* len, int64_t b, int64_t t) { return t < len[b]; }

// Elementwise loops over hidden units [k0, k1), written once for a vector X = Vec<T>::V (W units at
// a time) and for the scalar tail: GCC did not vectorise these loops by itself (the gradients may
// be written over the residuals they are computed from, so it cannot prove independence).
template <class X, class T>
inline X Ld(const T* p) {
  if constexpr (std::is_same_v<X, T>) {
    return *p;
  } else {
    X v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
}

template <class X, class T>
inline void St(T* p, X v) {
  if constexpr (std::is_same_v<X, T>) {
    *p = v;
  } else {
    std::memcpy(p, &v, sizeof(v));
  }
}

template <typename T, class F>
inline void ForUnits(int64_t k0, int64_t k1, F&& f) {
  using V = typename Vec<T>::V;
  constexpr int W = Vec<T>::W;
  int64_t k = k0;
  for (; k + W <= k1; k += W) f(V{}, k);
  for (; k < k1; ++k) f(T{}, k);
}

// ---- a team of threads for the per-step work ----
// The caller and up to `helpers` tasks on XLA's intra-op thread pool split each phase of a step
// into chunks of hidden units. Chunks are claimed from one atomic counter, so the caller never
// waits for a helper that has not started (it then does every chunk itself): no deadlock even if
// the pool is busy, only less parallelism. Helpers leave when the kernel ends; their shared state
// outlives the call.
// Waiting never holds a core for long: a waiting thread (a helper between phases, the caller for
// the helpers' last chunks) spins for about the length of one phase (kSpins pauses, ~50-150 us),
// yields a few times, then sleeps on a condition variable until woken; the publisher wakes
// sleepers only when there are any (no system call on the fast path). So on a busy machine the
// helpers give their core back instead of spinning for the whole call (issue 12).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

constexpr int64_t kSpins = 2048, kYields = 16;

struct TeamState {
  std::atomic<uint64_t> state{0};  // epoch << 32 | next unclaimed chunk
  // The epoch whose job (n, fn, ctx) is published: set before those fields change, and read
  // before and after them, so a thread never pairs a chunk index of one epoch with another's job.
  std::atomic<uint64_t> job{0};
  std::atomic<int64_t> done{0};
  std::atomic<int64_t> n{0};
  std::atomic<void (*)(void*, int64_t)> fn{nullptr};
  std::atomic<void*> ctx{nullptr};
  std::atomic<bool> stop{false};
  // Parking: sleepers counts threads asleep (or about to sleep) on cv; each re-checks its
  // condition under mu after counting itself, and every publisher changes the condition (seq_cst)
  // before reading sleepers, so no wake-up is lost.
  std::atomic<int64_t> sleepers{0};
  std::mutex mu;
  std::condition_variable cv;
};

inline void Wake(TeamState& s) {
  if (s.sleepers.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lock(s.mu);
    s.cv.notify_all();
  }
}

// Waits until ready() holds: spin, then yield, then sleep until a Wake(). Returns false if it
// waited longer than kStall (the other thread was late by about a scheduler time slice:
// descheduled, on a busy machine). A shorter wait past the spinning is not a stall: e.g. a page
// fault or an interrupt on the other core (measured: counting every wait past the spinning as a
// stall sent the main LSTM case's threaded forward to one thread in most calls, benchmarks/NOTES.md,
// lever 10).
constexpr auto kStall = std::chrono::microseconds(1000);

template <class Ready>
inline bool WaitUntil(TeamState& s, Ready ready) {
  for (int64_t i = 0; i < kSpins; ++i) {
    if (ready()) return true;
    CpuRelax();
  }
  const auto start = std::chrono::steady_clock::now();
  auto on_time = [&] { return std::chrono::steady_clock::now() - start < kStall; };
  for (int64_t i = 0; i < kYields; ++i) {
    if (ready()) return on_time();
    std::this_thread::yield();
  }
  std::unique_lock<std::mutex> lock(s.mu);
  s.sleepers.fetch_add(1, std::memory_order_seq_cst);
  s.cv.wait(lock, ready);
  s.sleepers.fetch_sub(1, std::memory_order_seq_cst);
  return on_time();
}

// Calls left to run on one thread after a call whose helpers kept the caller waiting (see Team).
inline std::atomic<int64_t> g_serial_calls{0};
constexpr int64_t kMaxStalls = 2, kSerialCalls = 8;

// Claims and runs chunks of the current job until none is left. A claim is a CAS of the state
// word read before the job's fields: it succeeds only if no chunk was claimed and no job was
// published since, and the job tag (read on both sides of the fields) shows the fields belong to
// that word's epoch. (Without the tag a helper could read the state of a finished job, then the
// fields of the next one being published, and claim a chunk of it before its state word was
// stored: the chunk then ran twice and the caller could return before another chunk had run.)
inline void ClaimAndRun(TeamState& s) {
  for (;;) {
    uint64_t st = s.state.load(std::memory_order_seq_cst);
    const uint64_t epoch = st >> 32;
    if (s.job.load(std::memory_order_seq_cst) != epoch) {  // a job is being published
      CpuRelax();
      continue;
    }
    const int64_t n = s.n.load(std::memory_order_seq_cst);
    auto* fn = s.fn.load(std::memory_order_seq_cst);
    void* ctx = s.ctx.load(std::memory_order_seq_cst);
    if (s.job.load(std::memory_order_seq_cst) != epoch) continue;
    const int64_t next = static_cast<int64_t>(st & 0xffffffffu);
    if (fn == nullptr || next >= n) return;
    if (s.state.compare_exchange_weak(st, st + 1, std::memory_order_seq_cst)) {
      fn(ctx, next);
      if (s.done.fetch_add(1, std::memory_order_seq_cst) + 1 == n) Wake(s);
    }
  }
}

inline void HelperLoop(const std::shared_ptr<TeamState>& s) {
  while (!s->stop.load(std::memory_order_acquire)) {
    ClaimAndRun(*s);
    const uint64_t seen = s->state.load(std::memory_order_acquire);
    WaitUntil(*s, [&] {
      return s->state.load(std::memory_order_seq_cst) != seen ||
             s->stop.load(std::memory_order_seq_cst);
    });
  }
}

class Team {
 public:
  Team() : threads_(1) {}  // the calling thread only
  template <class Pool>  // ffi::ThreadPool, or anything with Schedule(task)
  Team(Pool* pool, int64_t helpers) : threads_(1) {
    if (pool == nullptr || helpers <= 0) return;
    s_ = std::make_shared<TeamState>();
    for (int64_t i = 0; i < helpers; ++i) {
      std::shared_ptr<TeamState> s = s_;
      pool->Schedule([s]() { HelperLoop(s); });
    }
    threads_ = 1 + helpers;
  }
  ~Team() {
    if (s_) {
      s_->stop.store(true, std::memory_order_seq_cst);
      Wake(*s_);
    }
    if (serial_) g_serial_calls.store(kSerialCalls, std::memory_order_relaxed);
  }
  int64_t threads() const { return threads_; }

  // Runs f(0), ..., f(n - 1), split across the team; returns when all have finished.
  template <class F>
  void Run(int64_t n, F& f) {
    if (!s_ || n <= 1 || serial_) {
      for (int64_t i = 0; i < n; ++i) f(i);
      return;
    }
    ++epoch_;
    s_->job.store(epoch_, std::memory_order_seq_cst);  // before the fields change
    s_->n.store(n, std::memory_order_seq_cst);
    s_->ctx.store(&f, std::memory_order_seq_cst);
    s_->fn.store(&Trampoline<F>, std::memory_order_seq_cst);
    s_->done.store(0, std::memory_order_seq_cst);
    s_->state.store(epoch_ << 32, std::memory_order_seq_cst);
    Wake(*s_);
    ClaimAndRun(*s_);
    // A helper that is descheduled in the middle of its chunk (another process wants the core)
    // holds the whole step for up to a scheduler time slice. After kMaxStalls such waits the rest
    // of the call, and the next kSerialCalls calls, run on the caller alone (measured under load:
    // benchmarks/NOTES.md, lever 8).
    if (!WaitUntil(*s_, [&] { return s_->done.load(std::memory_order_seq_cst) >= n; }))
      serial_ = ++stalls_ >= kMaxStalls;
  }

 private:
  template <class F>
  static void Trampoline(void* ctx, int64_t i) {
    (*static_cast<F*>(ctx))(i);
  }
  std::shared_ptr<TeamState> s_;
  int64_t threads_;
  uint64_t epoch_ = 0;
  int64_t stalls_ = 0;
  bool serial_ = false;
};

// Hidden units [begin(i), end(i)) of chunk i: one chunk per thread, multiples of 16 units.
struct Chunks {
  int64_t size, count, units;
  Chunks(int64_t h, int64_t threads) : units(h) {
    if (threads <= 1) {
      size = h, count = 1;
      return;
    }
    size = ((h + threads - 1) / threads + 15) / 16 * 16;
    count = (h + size - 1) / size;
  }
  int64_t begin(int64_t i) const { return i * size; }
  int64_t end(int64_t i) const { return std::min(units, (i + 1) * size); }
};

template <typename T>
void CopyRow(T* dst, const T* src, int64_t n) {
  std::memcpy(dst, src, n * sizeof(T));
}

template <typename T>
void ZeroRow(T* dst, int64_t n) {
  std::fill(dst, dst + n, T(0));
}

// A [B, H] state in two buffers: during a step every thread reads all of cur() while each writes
// its own units of next(); Swap() between steps.
template <typename T>
class PingPong {
 public:
  PingPong(const T* init, int64_t n) : buf_(2 * n), cur_(buf_.data()), next_(buf_.data() + n) {
    std::copy(init, init + n, cur_);
  }
  T* cur() const { return cur_; }
  T* next() const { return next_; }
  void Swap() { std::swap(cur_, next_); }

 private:
  Scratch<T> buf_;
  T* cur_;
  T* next_;
};

// One PackedB per chunk of hidden units: columns [col + begin(i), col + end(i)) of a row-major
// [K, ldb] matrix, packed in parallel across the team.
template <typename T>
std::vector<PackedB<T>> PackChunks(Team& team, const Chunks& ch, const T* B, int64_t ldb,
                                   int64_t K, int64_t col) {
  std::vector<PackedB<T>> out(ch.count);
  auto pack = [&](int64_t i) {
    out[i] = PackedB<T>(B + col + ch.begin(i), ldb, K, ch.end(i) - ch.begin(i));
  };
  team.Run(ch.count, pack);
  return out;
}

// The carry gradient of a backward step for the units [k0, k0 + w) of one chunk:
// dhn[:, units] = d[B, K] Ut[K, units] (d with leading dimension ldd; Ut the chunk's packed
// columns of U^T); rows past their length keep dh (their d rows are zero).
template <typename T>
void CarryGradient(int64_t B, int64_t H, const T* d, int64_t ldd, const PackedB<T>& Ut,
                   const int32_t* len, int64_t t, const T* dh, T* dhn, int64_t k0, int64_t w) {
  for (int64_t b = 0; b < B; ++b) ZeroRow(dhn + b * H + k0, w);
  GemmP<T>(B, d, ldd, Ut, dhn + k0, H, dhn + k0, H);
  for (int64_t b = 0; b < B; ++b)
    if (!Active(len, b, t)) CopyRow(dhn + b * H + k0, dh + b * H + k0, w);
}

// The operand of the weight gradients, stored transposed during the forward (residuals only):
// at [H + F + 1, T, B], column (t, b) = [h_{t-1}[b], x_t[b], 1], so that after the backward XLA
// forms [dU; dW; db] = at . dz as ONE plain matmul over (t, b), with no transposed copy of the
// states and one pass over dz instead of three (benchmarks/NOTES.md, lever 10). A step's chunk
// [k0, k1) stores its units' rows of h_{t-1}; the first chunk also stores x_t and the ones.
// h_{t-1} is the previous step's output: zero where the row had ended (its dz is zero there).
template <typename T>
void StoreOperand(T* at, int64_t Tn, int64_t t, int64_t B, int64_t S, int64_t F, int64_t H, const T* h,
                  const T* x, const int32_t* len, int64_t k0, int64_t k1) {
  for (int64_t k = k0; k < k1; ++k) {
    T* row = at + (k * Tn + t) * S;
    for (int64_t b = 0; b < B; ++b) row[b] = t == 0 || Active(len, b, t - 1) ? h[b * H + k] : T(0);
  }
  if (k0 != 0) return;
  for (int64_t f = 0; f < F; ++f) {
    T* row = at + ((H + f) * Tn + t) * S;
    for (int64_t b = 0; b < B; ++b) row[b] = x[b * F + f];
  }
  std::fill(at + ((H + F) * Tn + t) * S, at + ((H + F) * Tn + t) * S + B, T(1));
}

// ---------------------------------- SimpleRNN ----------------------------------
template <typename T>
void SrnFwd(Team& team, int64_t Tn, int64_t B, int64_t S, int64_t F, int64_t H, const T* xs, const T* Wx,
            const T* bias, const T* U, const T* h0, const int32_t* len, T* hs, T* hT, T* at,
            int64_t rs) {
  PingPong<T> hh(h0, B * H);
  Scratch<T> z(B * H);
  const Chunks ch(H, team.threads());
  const auto Wp = PackChunks<T>(team, ch, Wx, H, F, 0), Up = PackChunks<T>(team, ch, U, H, H, 0);
  for (int64_t t = 0; t < Tn; ++t) {
    T* h = hh.cur();
    T* hn = hh.next();
    const T* x = xs + t * S * F;
    auto step = [&](int64_t i) {
      const int64_t k0 = ch.begin(i), w = ch.end(i) - k0;
      if (rs) StoreOperand<T>(at, Tn, t, B, S, F, H, h, x, len, k0, k0 + w);
      GemmP<T>(B, x, F, Wp[i], bias + k0, 0, z.data() + k0, H, h, H, &Up[i]);
      for (int64_t b = 0; b < B; ++b) {
        T* zb = z.data() + b * H + k0;
        T* out = hs + (t * S + b) * H + k0;
        if (Active(len, b, t)) {
          Tanh(zb, w);
          CopyRow(hn + b * H + k0, zb, w);
          CopyRow(out, zb, w);
        } else {
          CopyRow(hn + b * H + k0, h + b * H + k0, w);
          ZeroRow(out, w);
        }
      }
    };
    team.Run(ch.count, step);
    hh.Swap();
  }
  CopyRow(hT, hh.cur(), B * H);
}

template <typename T>
void SrnBwd(Team& team, int64_t Tn, int64_t B, int64_t S, int64_t H, const T* U, const int32_t* len,
            const T* hs, const T* dhs, const T* dhT, T* dz, T* dh0) {
  Scratch<T> Ut = Transpose(U, H, H);
  PingPong<T> dd(dhT, B * H);
  const Chunks ch(H, team.threads());
  const auto Utp = PackChunks<T>(team, ch, Ut.data(), H, H, 0);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    T* dh = dd.cur();
    T* dhn = dd.next();
    T* d = dz + t * S * H;
    auto gates = [&](int64_t i) {
      const int64_t k0 = ch.begin(i), k1 = ch.end(i);
      for (int64_t b = 0; b < B; ++b) {
        const int64_t o = (t * S + b) * H;
        if (!Active(len, b, t)) {
          ZeroRow(d + b * H + k0, k1 - k0);
          continue;
        }
        for (int64_t k = k0; k < k1; ++k) {
          const T y = hs[o + k];
          d[b * H + k] = (dh[b * H + k] + dhs[o + k]) * (T(1) - y * y);
        }
      }
    };
    auto matmul = [&](int64_t i) {
      const int64_t k0 = ch.begin(i), w = ch.end(i) - k0;
      CarryGradient<T>(B, H, d, H, Utp[i], len, t, dh, dhn, k0, w);
    };
    team.Run(ch.count, gates);
    team.Run(ch.count, matmul);
    dd.Swap();
  }
  CopyRow(dh0, dd.cur(), B * H);
}

// ------------------------------------- GRU -------------------------------------
// Gate order (r, z, n); reset applied after the matmul: n = tanh(x_n + r * (h U_n + b_n)).
// Residuals per step: [r, z, n, h U_n + b_n] ([B, 4H]).
template <typename T>
void GruFwd(Team& team, int64_t Tn, int64_t B, int64_t S, int64_t F, int64_t H, const T* xs, const T* Wx,
            const T* bias, const T* U, const T* rb, const T* h0, const int32_t* len, T* hs, T* res,
            T* hT, T* at, int64_t rs) {
  const int64_t G = 3 * H;
  PingPong<T> hh(h0, B * H);
  Scratch<T> hp(B * G), sc(B * G), xpb(B * G);
  const Chunks ch(H, team.threads());
  std::vector<PackedB<T>> Wp[3], Up[3];  // [gate][chunk]
  for (int64_t gate = 0; gate < 3; ++gate) {
    Wp[gate] = PackChunks<T>(team, ch, Wx, G, F, gate * H);
    Up[gate] = PackChunks<T>(team, ch, U, G, H, gate * H);
  }
  for (int64_t t = 0; t < Tn; ++t) {
    T* h = hh.cur();
    T* hn = hh.next();
    const T* xt = xs + t * S * F;
    const T* x = xpb.data();
    auto step = [&](int64_t i) {
      const int64_t k0 = ch.begin(i), k1 = ch.end(i), w = k1 - k0;
      if (rs) StoreOperand<T>(at, Tn, t, B, S, F, H, h, xt, len, k0, k1);
      for (int64_t gate = 0; gate < 3; ++gate) {
        const int64_t col = gate * H + k0;
        GemmP<T>(B, xt, F, Wp[gate][i], bias + col, 0, xpb.data() + col, G);
        GemmP<T>(B, h, H, Up[gate][i], rb + col, 0, hp.data() + col, G);
      }
      for (int64_t b = 0; b < B; ++b) {
        const T* xb = x + b * G;
        const T* pb = hp.data() + b * G;
        T* s = sc.data() + b * G;
        ForUnits<T>(k0, k1, [&](auto u, int64_t k) {
          using X = decltype(u);
          St(s + k, Ld<X>(xb + k) + Ld<X>(pb + k));
          St(s + H + k, Ld<X>(xb + H + k) + Ld<X>(pb + H + k));
        });
        Sigmoid(s + k0, w);
        Sigmoid(s + H + k0, w);
        ForUnits<T>(k0, k1, [&](auto u, int64_t k) {
          using X = decltype(u);
          St(s + 2 * H + k, Ld<X>(xb + 2 * H + k) + Ld<X>(s + k) * Ld<X>(pb + 2 * H + k));
        });
        Tanh(s + 2 * H + k0, w);
        T* r4 = res + (t * rs * S + b) * 4 * H;
        CopyRow(r4 + k0, s + k0, w);
        CopyRow(r4 + H + k0, s + H + k0, w);
        CopyRow(r4 + 2 * H + k0, s + 2 * H + k0, w);
        CopyRow(r4 + 3 * H + k0, pb + 2 * H + k0, w);
        T* out = hs + (t * S + b) * H;
        if (Active(len, b, t)) {
          ForUnits<T>(k0, k1, [&](auto u, int64_t k) {
            using X = decltype(u);
            const X z = Ld<X>(s + H + k);
            const X v = (T(1) - z) * Ld<X>(s + 2 * H + k) + z * Ld<X>(h + b * H + k);
            St(hn + b * H + k, v);
            St(out + k, v);
          });
        } else {
          CopyRow(hn + b * H + k0, h + b * H + k0, w);
          ZeroRow(out + k0, w);
        }
      }
    };
    team.Run(ch.count, step);
    hh.Swap();
  }
  CopyRow(hT, hh.cur(), B * H);
}

// d4 [T, B, 4H] = [dr, dz, dn_x, dn_h]: the gradients of the pre-activations r, z, of the n gate's
// input part x_n and of its recurrent part h U_n + b_n (= dn_x * r). It may alias res: each
// (row, unit) reads its four residuals before writing its four gradients.
template <typename T>
void GruBwd(Team& team, int64_t Tn, int64_t B, int64_t S, int64_t H, const T* U, const T* h0,
            const int32_t* len, const T* hs, const T* res, const T* dhs, const T* dhT, T* d4,
            T* dh0) {
  const int64_t G = 3 * H, G4 = 4 * H;
  Scratch<T> Ut = Transpose(U, H, G), direct(B * H);
  PingPong<T> dd(dhT, B * H);
  const Chunks ch(H, team.threads());
  const auto Urz = PackChunks<T>(team, ch, Ut.data(), H, 2 * H, 0);
  const auto Un = PackChunks<T>(team, ch, Ut.data() + 2 * H * H, H, H, 0);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    T* dh = dd.cur();
    T* dhn = dd.next();
    T* d = d4 + t * S * G4;
    auto gates = [&](int64_t i) {
      const int64_t k0 = ch.begin(i), k1 = ch.end(i), w = k1 - k0;
      for (int64_t b = 0; b < B; ++b) {
        T* db = d + b * G4;
        if (!Active(len, b, t)) {
          for (int64_t block = 0; block < 4; ++block) ZeroRow(db + block * H + k0, w);
          continue;
        }
        const T* r4 = res + (t * S + b) * G4;
        const T* hprev = t > 0 ? hs + ((t - 1) * S + b) * H : h0 + b * H;
        const int64_t o = (t * S + b) * H;
        ForUnits<T>(k0, k1, [&](auto u, int64_t k) {
          using X = decltype(u);
          const X r = Ld<X>(r4 + k), z = Ld<X>(r4 + H + k), n = Ld<X>(r4 + 2 * H + k);
          const X hpn = Ld<X>(r4 + 3 * H + k);
          const X dht = Ld<X>(dh + b * H + k) + Ld<X>(dhs + o + k);
          const X dnp = dht * (T(1) - z) * (T(1) - n * n);
          const X drp = dnp * hpn * r * (T(1) - r);
          const X dzp = dht * (Ld<X>(hprev + k) - n) * z * (T(1) - z);
          St(direct.data() + b * H + k, dht * z);
          St(db + k, drp);
          St(db + H + k, dzp);
          St(db + 2 * H + k, dnp);
          St(db + 3 * H + k, dnp * r);
        });
      }
    };
    auto matmul = [&](int64_t i) {  // dh_{t-1} = [dr, dz, dn_h] U^T + z * dh_t
      const int64_t k0 = ch.begin(i), k1 = ch.end(i), w = k1 - k0;
      CarryGradient<T>(B, H, d, G4, Urz[i], len, t, dh, dhn, k0, w);  // [dr, dz] part
      // + dn_h U_n^T (zero for rows past their length: their d rows are zero), + z * dh_t.
      GemmP<T>(B, d + 3 * H, G4, Un[i], dhn + k0, H, dhn + k0, H);
      for (int64_t b = 0; b < B; ++b) {
        if (!Active(len, b, t)) continue;
        ForUnits<T>(k0, k1, [&](auto u, int64_t k) {
          using X = decltype(u);
          St(dhn + b * H + k, Ld<X>(dhn + b * H + k) + Ld<X>(direct.data() + b * H + k));
        });
      }
    };
    team.Run(ch.count, gates);
    team.Run(ch.count, matmul);
    dd.Swap();
  }
  CopyRow(dh0, dd.cur(), B * H);
}

// ------------------------------------- LSTM ------------------------------------
// Gate order (i, f, g, o); residuals per step: the activations [i, f, g, o] ([B, 4H]) and c_t.
// rs = 1: residuals for every step (cs [T, B, H], acts [T, B, 4H]); rs = 0: inference, buffers of
// one step ([1, B, ...]) reused as scratch. The same for the GRU's res.
template <typename T>
void LstmFwd(Team& team, int64_t Tn, int64_t B, int64_t S, int64_t F, int64_t H, const T* xs, const T* Wx,
             const T* bias, const T* U, const T* h0, const T* c0, const int32_t* len, T* hs, T* cs,
             T* acts, T* hT, T* cT, T* at, int64_t rs) {
  const int64_t G = 4 * H;
  PingPong<T> hh(h0, B * H);
  Scratch<T> c(c0, c0 + B * H), th(B * H);
  const Chunks ch(H, team.threads());
  // The weights: with one chunk, all four gates' columns as one block; else each gate's columns
  // of each chunk's units.
  PackedB<T> Wall, Uall;
  std::vector<PackedB<T>> Wp[4], Up[4];  // [gate][chunk]
  if (ch.count == 1) {
    Wall = PackedB<T>(Wx, G, F, G);
    Uall = PackedB<T>(U, G, H, G);
  } else {
    for (int64_t gate = 0; gate < 4; ++gate) {
      Wp[gate] = PackChunks<T>(team, ch, Wx, G, F, gate * H);
      Up[gate] = PackChunks<T>(team, ch, U, G, H, gate * H);
    }
  }
  for (int64_t t = 0; t < Tn; ++t) {
    T* h = hh.cur();
    T* hn = hh.next();
    T* z = acts + t * rs * S * G;
    const T* x = xs + t * S * F;
    auto step = [&](int64_t i) {
      const int64_t k0 = ch.begin(i), k1 = ch.end(i), w = k1 - k0;
      if (rs) StoreOperand<T>(at, Tn, t, B, S, F, H, h, x, len, k0, k1);
      if (ch.count == 1) {  // all gates in one call
        GemmP<T>(B, x, F, Wall, bias, 0, z, G, h, H, &Uall);
      } else {
        for (int64_t gate = 0; gate < 4; ++gate) {
          const int64_t col = gate * H + k0;
          GemmP<T>(B, x, F, Wp[gate][i], bias + col, 0, z + col, G, h, H, &Up[gate][i]);
        }
      }
      for (int64_t b = 0; b < B; ++b) {
        T* zb = z + b * G;
        Sigmoid(zb + k0, w);
        Sigmoid(zb + H + k0, w);
        Tanh(zb + 2 * H + k0, w);
        Sigmoid(zb + 3 * H + k0, w);
        T* cb = c.data() + b * H;
        T* tb = th.data() + b * H;
        T* out = hs + (t * S + b) * H;
        if (Active(len, b, t)) {
          ForUnits<T>(k0, k1, [&](auto u, int64_t k) {
            using X = decltype(u);
            const X cn = Ld<X>(zb + H + k) * Ld<X>(cb + k) + Ld<X>(zb + k) * Ld<X>(zb + 2 * H + k);
            St(cb + k, cn);
            St(tb + k, cn);
          });
          Tanh(tb + k0, w);
          ForUnits<T>(k0, k1, [&](auto u, int64_t k) {
            using X = decltype(u);
            St(hn + b * H + k, Ld<X>(zb + 3 * H + k) * Ld<X>(tb + k));
          });
          CopyRow(out + k0, hn + b * H + k0, w);
        } else {
          CopyRow(hn + b * H + k0, h + b * H + k0, w);
          ZeroRow(out + k0, w);
        }
        CopyRow(cs + (t * rs * S + b) * H + k0, cb + k0, w);
      }
    };
    team.Run(ch.count, step);
    hh.Swap();
  }
  CopyRow(hT, hh.cur(), B * H);
  CopyRow(cT, c.data(), B * H);
}

// dz may alias acts (the layer passes the activations' buffer to be overwritten): every (row,
// unit) reads its four activations before writing its four gradients.
template <typename T>
void LstmBwd(Team& team, int64_t Tn, int64_t B, int64_t S, int64_t H, const T* U, const T* c0,
             const int32_t* len, const T* cs, const T* acts, const T* dhs, const T* dhT,
             const T* dcT, T* dz, T* dh0, T* dc0) {
  const int64_t G = 4 * H;
  Scratch<T> Ut = Transpose(U, H, G), dc(dcT, dcT + B * H), th(B * H);
  PingPong<T> dd(dhT, B * H);
  const Chunks ch(H, team.threads());
  const auto Utp = PackChunks<T>(team, ch, Ut.data(), H, G, 0);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    T* dh = dd.cur();
    T* dhn = dd.next();
    T* d = dz + t * S * G;
    auto gates = [&](int64_t i) {
      const int64_t k0 = ch.begin(i), k1 = ch.end(i), w = k1 - k0;
      for (int64_t b = 0; b < B; ++b) {
        T* db = d + b * G;
        if (!Active(len, b, t)) {
          for (int64_t gate = 0; gate < 4; ++gate) ZeroRow(db + gate * H + k0, w);
          continue;
        }
        const T* a = acts + (t * S + b) * G;
        const T* cprev = t > 0 ? cs + ((t - 1) * S + b) * H : c0 + b * H;
        const int64_t o = (t * S + b) * H;
        T* tb = th.data() + b * H;
        CopyRow(tb + k0, cs + o + k0, w);
        Tanh(tb + k0, w);
        ForUnits<T>(k0, k1, [&](auto u, int64_t k) {
          using X = decltype(u);
          const X ig = Ld<X>(a + k), f = Ld<X>(a + H + k), g = Ld<X>(a + 2 * H + k);
          const X og = Ld<X>(a + 3 * H + k), tc = Ld<X>(tb + k);
          const X dht = Ld<X>(dh + b * H + k) + Ld<X>(dhs + o + k);
          const X dct = Ld<X>(dc.data() + b * H + k) + dht * og * (T(1) - tc * tc);
          St(db + k, dct * g * ig * (T(1) - ig));
          St(db + H + k, dct * Ld<X>(cprev + k) * f * (T(1) - f));
          St(db + 2 * H + k, dct * ig * (T(1) - g * g));
          St(db + 3 * H + k, dht * tc * og * (T(1) - og));
          St(dc.data() + b * H + k, dct * f);
        });
      }
    };
    auto matmul = [&](int64_t i) {
      const int64_t k0 = ch.begin(i), w = ch.end(i) - k0;
      CarryGradient<T>(B, H, d, G, Utp[i], len, t, dh, dhn, k0, w);
    };
    team.Run(ch.count, gates);
    team.Run(ch.count, matmul);
    dd.Swap();
  }
  CopyRow(dh0, dd.cur(), B * H);
  CopyRow(dc0, dc.data(), B * H);
}

// ---------------------------------- FFI glue ----------------------------------
struct Dims {
  int64_t T, B, N;
};

ffi::Error SeqDims(const ffi::AnyBuffer& x, Dims* d) {
  auto dims = x.dimensions();
  if (dims.size() != 3) return ffi::Error::InvalidArgument("seqjax kernel: expected [T, B, N]");
  *d = {dims[0], dims[1], dims[2]};
  return ffi::Error::Success();
}

#define SEQJAX_DISPATCH(buf, CALL)                                                  \
  switch (buf.element_type()) {                                                     \
    case ffi::DataType::F32: {                                                      \
      using T = float;                                                              \
      CALL;                                                                         \
      return ffi::Error::Success();                                                 \
    }                                                                               \
    case ffi::DataType::F64: {                                                      \
      using T = double;                                                             \
      CALL;                                                                         \
      return ffi::Error::Success();                                                 \
    }                                                                               \
    default:                                                                        \
      return ffi::Error::InvalidArgument("seqjax kernel: only float32 and float64"); \
  }

// How a call uses its threads (at most XLA's intra-op pool and the CPUs, or
// $SEQJAX_KERNEL_THREADS; one thread for a while after a call whose helpers kept it waiting):
// - slices of the batch, each through the whole time loop on one thread. Rows never interact, so
//   the threads never wait for each other between steps (one join at the end of the call). Used
//   when every thread gets at least kMinRows rows. (Two slices share a cache line of the
//   weight-gradient operand's [., T, B] rows where a boundary is not a multiple of 16 rows;
//   measured at the long case, 8 + 8 rows: still 1.3x faster than one thread.)
// - else (few rows), each step's hidden units split across the team, one barrier per phase: only
//   from 2^21 multiply-adds per step (measured: below that the barriers cost more), at most one
//   thread per 16 hidden units.
// benchmarks/NOTES.md, lever 11.
constexpr int64_t kMinRows = 8;

struct ThreadPlan {
  int64_t slices, helpers;
};

ThreadPlan PlanThreads(ffi::ThreadPool& pool, int64_t B, int64_t H, int64_t G) {
  int64_t threads = pool.num_threads();
  if (g_serial_calls.load(std::memory_order_relaxed) > 0) {  // a recent call was kept waiting
    g_serial_calls.fetch_sub(1, std::memory_order_relaxed);
    threads = 1;
  }
  if (const char* env = std::getenv("SEQJAX_KERNEL_THREADS")) threads = std::atoi(env);
  const int64_t hw = std::thread::hardware_concurrency();
  if (hw > 0) threads = std::min(threads, hw);
  const int64_t slices = std::min(threads, B / kMinRows);
  if (slices >= 2) return {slices, slices - 1};
  if (B * H * G < (int64_t{1} << 21)) threads = 1;
  threads = std::min(threads, (H + 15) / 16);
  return {1, std::max<int64_t>(threads, 1) - 1};
}

class Parallel {
 public:
  Parallel(ffi::ThreadPool& pool, int64_t B, int64_t H, int64_t G)
      : Parallel(pool, B, PlanThreads(pool, B, H, G)) {}
  // The team for work split within a step (or for PrepareOutputs).
  Team& team() { return team_; }
  // f(team, first row, rows): once over the whole batch with the team, or once per slice (the
  // slices spread over the team, each with a team of its own thread only).
  template <class F>
  void Run(F&& f) {
    if (slices_ <= 1) {
      f(team_, int64_t{0}, B_);
      return;
    }
    auto slice = [&](int64_t i) {
      Team solo;
      const int64_t b0 = Bound(i), b1 = Bound(i + 1);
      f(solo, b0, b1 - b0);
    };
    team_.Run(slices_, slice);
  }

 private:
  Parallel(ffi::ThreadPool& pool, int64_t B, ThreadPlan plan)
      : B_(B), slices_(plan.slices), team_(&pool, plan.helpers) {}
  int64_t Bound(int64_t i) const { return B_ * i / slices_; }
  int64_t B_, slices_;
  Team team_;
};

// Large fresh output buffers: ask Linux for transparent huge pages before the first write, so
// that touching them costs one page fault per 2 MiB instead of one per 4 KiB (first-touch faults
// were a large part of a training step: benchmarks/NOTES.md). A no-op where THP is off.
void AdviseHugePages(ffi::Result<ffi::AnyBuffer>& buf) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(buf->untyped_data());
  const uintptr_t end = begin + buf->size_bytes();
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1), last = end & ~(kHuge - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#endif
}

// Fresh outputs that the time loop writes in full: with a team of threads, touch each of their
// pages before the loop, split across the team. Linux zeroes a page at its first write (a 2 MiB
// huge page takes ~100 us, more in a VM whose host reclaims freed memory); with the hidden units
// split, that happened in the middle of a step, on one thread, while the others waited at the
// step's barrier (measured: forward p90 34-39 -> 24-25 ms at the main LSTM case, lever 10). The
// batch slices (lever 11) have no such barrier; the pass is kept for them unmeasured on its own.
// Never pass an output that aliases an input (its contents are the input).
void PrepareOutputs(Team& team, std::initializer_list<ffi::Result<ffi::AnyBuffer>*> outs) {
  for (auto* buf : outs) AdviseHugePages(*buf);
  if (team.threads() <= 1) return;
  constexpr int64_t kPiece = int64_t{2} << 20, kPage = 4096;
  struct Range {
    char* begin;
    int64_t size;
  };
  std::vector<Range> pieces;
  for (auto* buf : outs) {
    char* data = static_cast<char*>((*buf)->untyped_data());
    const int64_t size = static_cast<int64_t>((*buf)->size_bytes());
    for (int64_t o = 0; o < size; o += kPiece) pieces.push_back({data + o, std::min(kPiece, size - o)});
  }
  auto touch = [&](int64_t i) {
    volatile char* p = pieces[i].begin;
    for (int64_t o = 0; o < pieces[i].size; o += kPage) p[o] = 0;
  };
  team.Run(static_cast<int64_t>(pieces.size()), touch);
}

// Whether the forward keeps residuals for a backward: the operand of the weight gradients is
// [H + F + 1, T, B] then, else a [H + F + 1, 1, B] scratch buffer (so are the other residuals).
int64_t Residuals(ffi::Result<ffi::AnyBuffer>& at, const Dims& d) {
  return at->dimensions().size() == 3 && at->dimensions()[1] == d.T ? 1 : 0;
}

#define P(buf) (buf).typed_data<T>()
#define R(buf) (buf)->typed_data<T>()

ffi::Error SrnFwdImpl(ffi::ThreadPool pool, ffi::AnyBuffer xs, ffi::AnyBuffer Wx,
                      ffi::AnyBuffer bias, ffi::AnyBuffer U, ffi::AnyBuffer h0,
                      ffi::Buffer<ffi::S32> len, ffi::Result<ffi::AnyBuffer> hs,
                      ffi::Result<ffi::AnyBuffer> hT, ffi::Result<ffi::AnyBuffer> at) {
  Dims d;  // xs [T, B, F]
  if (auto e = SeqDims(xs, &d); e.failure()) return e;
  const int64_t H = U.dimensions()[0];
  const int64_t rs = Residuals(at, d), F = d.N;
  Parallel par(pool, d.B, H, H);
  PrepareOutputs(par.team(), {&hs, &at});
  SEQJAX_DISPATCH(xs, par.Run([&](Team& team, int64_t b0, int64_t nb) {
    SrnFwd<T>(team, d.T, nb, d.B, F, H, P(xs) + b0 * F, P(Wx), P(bias), P(U), P(h0) + b0 * H,
              len.typed_data() + b0, R(hs) + b0 * H, R(hT) + b0 * H, R(at) + b0, rs);
  }))
}

ffi::Error SrnBwdImpl(ffi::ThreadPool pool, ffi::AnyBuffer U, ffi::Buffer<ffi::S32> len, ffi::AnyBuffer hs,
                      ffi::AnyBuffer dhs, ffi::AnyBuffer dhT, ffi::Result<ffi::AnyBuffer> dz,
                      ffi::Result<ffi::AnyBuffer> dh0) {
  Dims d;
  if (auto e = SeqDims(hs, &d); e.failure()) return e;
  const int64_t H = d.N;
  Parallel par(pool, d.B, H, H);
  PrepareOutputs(par.team(), {&dz});
  SEQJAX_DISPATCH(hs, par.Run([&](Team& team, int64_t b0, int64_t nb) {
    SrnBwd<T>(team, d.T, nb, d.B, H, P(U), len.typed_data() + b0, P(hs) + b0 * H,
              P(dhs) + b0 * H, P(dhT) + b0 * H, R(dz) + b0 * H, R(dh0) + b0 * H);
  }))
}

ffi::Error GruFwdImpl(ffi::ThreadPool pool, ffi::AnyBuffer xs, ffi::AnyBuffer Wx,
                      ffi::AnyBuffer bias, ffi::AnyBuffer U, ffi::AnyBuffer rb, ffi::AnyBuffer h0,
                      ffi::Buffer<ffi::S32> len, ffi::Result<ffi::AnyBuffer> hs,
                      ffi::Result<ffi::AnyBuffer> res, ffi::Result<ffi::AnyBuffer> hT,
                      ffi::Result<ffi::AnyBuffer> at) {
  Dims d;  // xs [T, B, F]
  if (auto e = SeqDims(xs, &d); e.failure()) return e;
  const int64_t H = U.dimensions()[0];
  const int64_t rs = Residuals(at, d), F = d.N;
  Parallel par(pool, d.B, H, 3 * H);
  PrepareOutputs(par.team(), {&hs, &res, &at});
  SEQJAX_DISPATCH(xs, par.Run([&](Team& team, int64_t b0, int64_t nb) {
    GruFwd<T>(team, d.T, nb, d.B, F, H, P(xs) + b0 * F, P(Wx), P(bias), P(U), P(rb),
              P(h0) + b0 * H, len.typed_data() + b0, R(hs) + b0 * H, R(res) + b0 * 4 * H,
              R(hT) + b0 * H, R(at) + b0, rs);
  }))
}

ffi::Error GruBwdImpl(ffi::ThreadPool pool, ffi::AnyBuffer U, ffi::AnyBuffer h0,
                      ffi::Buffer<ffi::S32> len, ffi::AnyBuffer hs, ffi::AnyBuffer res,
                      ffi::AnyBuffer dhs, ffi::AnyBuffer dhT, ffi::Result<ffi::AnyBuffer> d4,
                      ffi::Result<ffi::AnyBuffer> dh0) {
  Dims d;  // hs [T, B, H]
  if (auto e = SeqDims(hs, &d); e.failure()) return e;
  const int64_t H = d.N;
  Parallel par(pool, d.B, H, 3 * H);
  SEQJAX_DISPATCH(hs, par.Run([&](Team& team, int64_t b0, int64_t nb) {
    GruBwd<T>(team, d.T, nb, d.B, H, P(U), P(h0) + b0 * H, len.typed_data() + b0,
              P(hs) + b0 * H, P(res) + b0 * 4 * H, P(dhs) + b0 * H, P(dhT) + b0 * H,
              R(d4) + b0 * 4 * H, R(dh0) + b0 * H);
  }))
}

ffi::Error LstmFwdImpl(ffi::ThreadPool pool, ffi::AnyBuffer xs, ffi::AnyBuffer Wx,
                       ffi::AnyBuffer bias, ffi::AnyBuffer U, ffi::AnyBuffer h0, ffi::AnyBuffer c0,
                       ffi::Buffer<ffi::S32> len, ffi::Result<ffi::AnyBuffer> hs,
                       ffi::Result<ffi::AnyBuffer> cs, ffi::Result<ffi::AnyBuffer> acts,
                       ffi::Result<ffi::AnyBuffer> hT, ffi::Result<ffi::AnyBuffer> cT,
                       ffi::Result<ffi::AnyBuffer> at) {
  Dims d;  // xs [T, B, F]
  if (auto e = SeqDims(xs, &d); e.failure()) return e;
  const int64_t H = U.dimensions()[0];
  const int64_t rs = Residuals(at, d), F = d.N;
  Parallel par(pool, d.B, H, 4 * H);
  PrepareOutputs(par.team(), {&hs, &cs, &acts, &at});
  SEQJAX_DISPATCH(xs, par.Run([&](Team& team, int64_t b0, int64_t nb) {
    LstmFwd<T>(team, d.T, nb, d.B, F, H, P(xs) + b0 * F, P(Wx), P(bias), P(U), P(h0) + b0 * H,
               P(c0) + b0 * H, len.typed_data() + b0, R(hs) + b0 * H, R(cs) + b0 * H,
               R(acts) + b0 * 4 * H, R(hT) + b0 * H, R(cT) + b0 * H, R(at) + b0, rs);
  }))
}

ffi::Error LstmBwdImpl(ffi::ThreadPool pool, ffi::AnyBuffer U, ffi::AnyBuffer c0, ffi::Buffer<ffi::S32> len,
                       ffi::AnyBuffer cs, ffi::AnyBuffer acts, ffi::AnyBuffer dhs,
                       ffi::AnyBuffer dhT, ffi::AnyBuffer dcT, ffi::Result<ffi::AnyBuffer> dz,
                       ffi::Result<ffi::AnyBuffer> dh0, ffi::Result<ffi::AnyBuffer> dc0) {
  Dims d;
  if (auto e = SeqDims(cs, &d); e.failure()) return e;
  const int64_t H = d.N;
  Parallel par(pool, d.B, H, 4 * H);
  SEQJAX_DISPATCH(cs, par.Run([&](Team& team, int64_t b0, int64_t nb) {
    LstmBwd<T>(team, d.T, nb, d.B, H, P(U), P(c0) + b0 * H, len.typed_data() + b0,
               P(cs) + b0 * H, P(acts) + b0 * 4 * H, P(dhs) + b0 * H, P(dhT) + b0 * H,
               P(dcT) + b0 * H, R(dz) + b0 * 4 * H, R(dh0) + b0 * H, R(dc0) + b0 * H);
  }))
}

}  // namespace

// The variant this library was built as ("avx512", "avx2" or "portable"), for the loader's check.
extern "C" __attribute__((visibility("default"))) const char* SeqjaxIsa() { return SEQJAX_ISA; }

using Buf = ffi::AnyBuffer;
using Len = ffi::Buffer<ffi::S32>;

// Argument lists, in order (see the *Impl functions and seqjax/nn/cpu_kernels.py).
XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxSrnFwd, SrnFwdImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<Buf>()  // xs
                                  .Arg<Buf>()  // W
                                  .Arg<Buf>()  // b
                                  .Arg<Buf>()  // U
                                  .Arg<Buf>()  // h0
                                  .Arg<Len>()
                                  .Ret<Buf>()  // hs
                                  .Ret<Buf>()  // hT
                                  .Ret<Buf>());  // operand of the weight gradients
XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxSrnBwd, SrnBwdImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<Buf>()  // U
                                  .Arg<Len>()
                                  .Arg<Buf>()  // hs
                                  .Arg<Buf>()  // dhs
                                  .Arg<Buf>()  // dhT
                                  .Ret<Buf>()  // dz
                                  .Ret<Buf>());  // dh0
XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxGruFwd, GruFwdImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<Buf>()  // xs
                                  .Arg<Buf>()  // W
                                  .Arg<Buf>()  // b
                                  .Arg<Buf>()  // U
                                  .Arg<Buf>()  // recurrent bias
                                  .Arg<Buf>()  // h0
                                  .Arg<Len>()
                                  .Ret<Buf>()  // hs
                                  .Ret<Buf>()  // residuals
                                  .Ret<Buf>()  // hT
                                  .Ret<Buf>());  // operand of the weight gradients
XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxGruBwd, GruBwdImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<Buf>()  // U
                                  .Arg<Buf>()  // h0
                                  .Arg<Len>()
                                  .Arg<Buf>()  // hs
                                  .Arg<Buf>()  // residuals
                                  .Arg<Buf>()  // dhs
                                  .Arg<Buf>()  // dhT
                                  .Ret<Buf>()  // d4 = [dr, dz, dn_x, dn_h] (may alias residuals)
                                  .Ret<Buf>());  // dh0
XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxLstmFwd, LstmFwdImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<Buf>()  // xs
                                  .Arg<Buf>()  // W
                                  .Arg<Buf>()  // b
                                  .Arg<Buf>()  // U
                                  .Arg<Buf>()  // h0
                                  .Arg<Buf>()  // c0
                                  .Arg<Len>()
                                  .Ret<Buf>()  // hs
                                  .Ret<Buf>()  // cs
                                  .Ret<Buf>()  // activations
                                  .Ret<Buf>()  // hT
                                  .Ret<Buf>()  // cT
                                  .Ret<Buf>());  // operand of the weight gradients
XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxLstmBwd, LstmBwdImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<Buf>()  // U
                                  .Arg<Buf>()  // c0
                                  .Arg<Len>()
                                  .Arg<Buf>()  // cs
                                  .Arg<Buf>()  // activations (overwritten by dz)
                                  .Arg<Buf>()  // dhs
                                  .Arg<Buf>()  // dhT
                                  .Arg<Buf>()  // dcT
                                  .Ret<Buf>()  // dz
                                  .Ret<Buf>()  // dh0
                                  .Ret<Buf>());  // dc0
