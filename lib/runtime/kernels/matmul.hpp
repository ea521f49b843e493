// Matrix products: a plain reference and an Eigen fast path, tested against each other.
#pragma once

#include <cstdint>

namespace slmopt::runtime {

// C[m,n] = sum_k A[m,k] * B[k,n], all row-major and contiguous.
template <class T>
void matmul_reference(const T* a, const T* b, T* c, int64_t m, int64_t k, int64_t n) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      T acc = T(0);
      for (int64_t p = 0; p < k; ++p) acc += a[i * k + p] * b[p * n + j];
      c[i * n + j] = acc;
    }
}

void matmul_fast(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n);
void matmul_fast(const double* a, const double* b, double* c, int64_t m, int64_t k, int64_t n);

}  // namespace slmopt::runtime
