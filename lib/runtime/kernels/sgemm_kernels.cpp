// The sgemm micro-kernels, one function each, and their table. A kernel keeps
// an MR x NR tile of C in registers and, per step of k, multiplies one packed
// column of A (MR values) by one row of B (NR values, ldb apart: a packed
// panel, or B itself when its rows are contiguous).
//
// The x86 kernels carry a target attribute instead of being built with
// -mavx2/-mavx512f: only these functions use the wide instructions, so nothing
// shared (inline library code) is ever compiled for a CPU that may lack them.
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.hpp"
#include "runtime/kernels/sgemm.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SLMOPT_X86 1
#endif

namespace slmopt::runtime {
namespace {

// Writes a finished tile: straight into C when whole, else through a buffer.
template <int64_t MR, int64_t NR>
void store_tile(const float* tile, float* c, int64_t ldc, int64_t rows, int64_t cols, bool accumulate) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + tile[i * NR + j] : tile[i * NR + j];
}

constexpr int64_t kPortableMr = 4, kPortableNr = 16;

void portable_kernel(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t rows,
                     int64_t cols, bool accumulate) {
  float tile[kPortableMr * kPortableNr] = {};
  for (int64_t p = 0; p < kc; ++p, a += kPortableMr, b += ldb)
    for (int64_t i = 0; i < kPortableMr; ++i)
      for (int64_t j = 0; j < kPortableNr; ++j) tile[i * kPortableNr + j] += a[i] * b[j];
  store_tile<kPortableMr, kPortableNr>(tile, c, ldc, rows, cols, accumulate);
}

bool always() { return true; }

#ifdef SLMOPT_X86

constexpr int64_t kAvx2Mr = 6, kAvx2Nr = 16;

__attribute__((target("avx2,fma"))) void avx2_kernel(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                                                     int64_t ldc, int64_t rows, int64_t cols, bool accumulate) {
  __m256 lo[kAvx2Mr], hi[kAvx2Mr];
#pragma GCC unroll 6
  for (int64_t i = 0; i < kAvx2Mr; ++i) lo[i] = hi[i] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p, a += kAvx2Mr, b += ldb) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int64_t i = 0; i < kAvx2Mr; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      lo[i] = _mm256_fmadd_ps(ai, b0, lo[i]);
      hi[i] = _mm256_fmadd_ps(ai, b1, hi[i]);
    }
  }
  if (rows == kAvx2Mr && cols == kAvx2Nr) {
#pragma GCC unroll 6
    for (int64_t i = 0; i < kAvx2Mr; ++i) {
      float* ci = c + i * ldc;
      if (accumulate) {
        lo[i] = _mm256_add_ps(lo[i], _mm256_loadu_ps(ci));
        hi[i] = _mm256_add_ps(hi[i], _mm256_loadu_ps(ci + 8));
      }
      _mm256_storeu_ps(ci, lo[i]);
      _mm256_storeu_ps(ci + 8, hi[i]);
    }
    return;
  }
  alignas(32) float tile[kAvx2Mr * kAvx2Nr];
  for (int64_t i = 0; i < kAvx2Mr; ++i) {
    _mm256_store_ps(tile + i * kAvx2Nr, lo[i]);
    _mm256_store_ps(tile + i * kAvx2Nr + 8, hi[i]);
  }
  store_tile<kAvx2Mr, kAvx2Nr>(tile, c, ldc, rows, cols, accumulate);
}

constexpr int64_t kAvx512Mr = 8, kAvx512Nr = 32;

__attribute__((target("avx512f"))) void avx512_kernel(int64_t kc, const float* a, const float* b, int64_t ldb,
                                                      float* c, int64_t ldc, int64_t rows, int64_t cols,
                                                      bool accumulate) {
  __m512 lo[kAvx512Mr], hi[kAvx512Mr];
#pragma GCC unroll 8
  for (int64_t i = 0; i < kAvx512Mr; ++i) lo[i] = hi[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p, a += kAvx512Mr, b += ldb) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 8
    for (int64_t i = 0; i < kAvx512Mr; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      lo[i] = _mm512_fmadd_ps(ai, b0, lo[i]);
      hi[i] = _mm512_fmadd_ps(ai, b1, hi[i]);
    }
  }
  if (rows == kAvx512Mr && cols == kAvx512Nr) {
#pragma GCC unroll 8
    for (int64_t i = 0; i < kAvx512Mr; ++i) {
      float* ci = c + i * ldc;
      if (accumulate) {
        lo[i] = _mm512_add_ps(lo[i], _mm512_loadu_ps(ci));
        hi[i] = _mm512_add_ps(hi[i], _mm512_loadu_ps(ci + 16));
      }
      _mm512_storeu_ps(ci, lo[i]);
      _mm512_storeu_ps(ci + 16, hi[i]);
    }
    return;
  }
  alignas(64) float tile[kAvx512Mr * kAvx512Nr];
  for (int64_t i = 0; i < kAvx512Mr; ++i) {
    _mm512_store_ps(tile + i * kAvx512Nr, lo[i]);
    _mm512_store_ps(tile + i * kAvx512Nr + 16, hi[i]);
  }
  store_tile<kAvx512Mr, kAvx512Nr>(tile, c, ldc, rows, cols, accumulate);
}

bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool has_avx512() { return __builtin_cpu_supports("avx512f"); }

#endif

const SgemmKernel* choose_kernel() {
  const char* cap = std::getenv("SLMOPT_SIMD");
  bool allowed = cap == nullptr || *cap == '\0';
  for (const SgemmKernel& k : sgemm_kernels()) {
    allowed = allowed || std::strcmp(cap, k.name) == 0;
    if (allowed && k.supported()) return &k;
  }
  throw Error(ErrorKind::Usage, std::string("SLMOPT_SIMD=") + cap + " names no kernel this CPU runs (avx512, avx2, portable)");
}

}  // namespace

const std::vector<SgemmKernel>& sgemm_kernels() {
  static const std::vector<SgemmKernel> kernels = {
#ifdef SLMOPT_X86
      {"avx512", kAvx512Mr, kAvx512Nr, has_avx512, avx512_kernel},
      {"avx2", kAvx2Mr, kAvx2Nr, has_avx2, avx2_kernel},
#endif
      {"portable", kPortableMr, kPortableNr, always, portable_kernel},
  };
  return kernels;
}

const SgemmKernel& sgemm_kernel() {
  static const SgemmKernel* chosen = choose_kernel();
  return *chosen;
}

}  // namespace slmopt::runtime
