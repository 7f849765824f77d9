// The CPU kernel's per-step products alone, one core: the weights as the kernel reads them
// (packed panels, PackedB/GemmP) against the same register-blocked GEMM reading them unpacked
// (rows 4H floats apart). benchmarks/NOTES.md, lever 12. Build and run (from the repository root):
//
//   g++ -O3 -std=c++17 -fno-math-errno -w -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma \
//     -I"$(python -c 'import jax; print(jax.ffi.include_dir())')" benchmarks/kernel_gemm.cc \
//     -o /tmp/kernel_gemm && for b in 64 32 16 8; do /tmp/kernel_gemm 256 $b; done
//
// (-mavx2 -mfma alone for the AVX2 build.) Arguments: hidden units H, rows B; F = 32 inputs.
#include "../seqjax/nn/csrc/recurrence_cpu.cc"

#include <chrono>
#include <cstdio>

namespace {

// C = Cin + A B with B unpacked (row stride ldb); n a multiple of the widest panel.
void GemmUnpacked(int64_t M, int64_t n, int64_t K, const float* A, int64_t lda, const float* B,
                  int64_t ldb, const float* Cin, int64_t ldi, float* C, int64_t ldc) {
  constexpr int64_t PW = kMaxNV * Vec<float>::W;
  for (int64_t j = 0; j < n; j += PW)
    Panel<float, kMaxNV>(M, K, A, lda, B + j, ldb, Cin + j, ldi, C + j, ldc, nullptr, 0, nullptr,
                         0, 0);
}

template <class F>
void Time(const char* name, int64_t B, int64_t H, double flop, F&& f) {
  constexpr int reps = 300;
  f();
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) f();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s %-24s B=%3ld H=%ld %8.1f us %7.1f GFLOP/s\n", SEQJAX_ISA, name, (long)B,
              (long)H, s / reps * 1e6, flop * reps / s * 1e-9);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return std::fprintf(stderr, "usage: %s H B\n", argv[0]), 2;
  const int64_t H = std::atoll(argv[1]), B = std::atoll(argv[2]), F = 32, G = 4 * H, K = F + H;
  if (G % (kMaxNV * Vec<float>::W) || H % (kMaxNV * Vec<float>::W))
    return std::fprintf(stderr, "H must be a multiple of %d\n", kMaxNV * Vec<float>::W), 2;
  Scratch<float> a(B * K), w(K * G), bias(G), z(B * G), ut(G * H), d(B * G), dh(B * H);
  for (auto* v : {&a, &w, &bias, &ut, &d})
    for (auto& e : *v) e = static_cast<float>(std::rand() % 100) * 1e-3f;
  const PackedB<float> wp(w.data(), G, K, G), utp(ut.data(), H, G, H);
  const double fwd = 2.0 * B * K * G, bwd = 2.0 * B * G * H;
  Time("forward unpacked", B, H, fwd,
       [&] { GemmUnpacked(B, G, K, a.data(), K, w.data(), G, bias.data(), 0, z.data(), G); });
  Time("forward packed", B, H, fwd,
       [&] { GemmP<float>(B, a.data(), K, wp, bias.data(), 0, z.data(), G); });
  Time("backward unpacked", B, H, bwd,
       [&] { GemmUnpacked(B, H, G, d.data(), G, ut.data(), H, dh.data(), H, dh.data(), H); });
  Time("backward packed", B, H, bwd,
       [&] { GemmP<float>(B, d.data(), G, utp, dh.data(), H, dh.data(), H); });
  return 0;
}
