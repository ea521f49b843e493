// Matrix products: a plain reference and a fast path (sgemm, Eigen for
// matrix-vector shapes and doubles), tested against each other.
#pragma once

#include <cstdint>

#include "runtime/kernels/sgemm.hpp"

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

// C = A * B (or C += A * B) for float operands in any layout: the packed sgemm,
// or Eigen when one side is a vector or two, where packing a whole operand
// would cost more than the product. packed_a / packed_b, when given, are the
// operands packed once (constant weights): the sgemm then skips packing them.
// Whether float_matmul takes the sgemm for these operands (else Eigen): only
// then are packed operands used, so only then is packing one worth it.
bool float_matmul_uses_sgemm(int64_t m, int64_t n, int64_t k, const MatrixView& a, const MatrixView& b);
void float_matmul(int64_t m, int64_t n, int64_t k, MatrixView a, MatrixView b, float* c, int64_t ldc,
                  bool accumulate = false, const PackedOperand* packed_a = nullptr,
                  const PackedOperand* packed_b = nullptr);

void matmul_fast(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n);
void matmul_fast(const double* a, const double* b, double* c, int64_t m, int64_t k, int64_t n);

}  // namespace slmopt::runtime
