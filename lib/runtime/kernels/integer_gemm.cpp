#include "runtime/kernels/integer_gemm.hpp"

#include <algorithm>
#include <vector>

namespace slmopt::runtime {

void integer_gemm_reference(int64_t m, int64_t n, int64_t k, const int16_t* a, const int16_t* b, int64_t* c) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t sum = 0;
      for (int64_t p = 0; p < k; ++p) sum += int64_t{a[i * k + p]} * int64_t{b[p * n + j]};
      c[i * n + j] = sum;
    }
}

void integer_gemm(int64_t m, int64_t n, int64_t k, const int16_t* a, const int16_t* b, int64_t* c) {
  constexpr int64_t kChunk = 32768;
  static_assert(kChunk * kIntegerOperandLimit * kIntegerOperandLimit < (int64_t{1} << 31));
  std::vector<int32_t> row(static_cast<size_t>(n));
  for (int64_t i = 0; i < m; ++i) {
    int64_t* out = c + i * n;
    std::fill_n(out, n, int64_t{0});
    for (int64_t p0 = 0; p0 < k; p0 += kChunk) {
      std::fill(row.begin(), row.end(), 0);
      // Row updates (C row += a[i,p] * B row p) vectorize over n.
      for (int64_t p = p0; p < std::min(k, p0 + kChunk); ++p) {
        const int32_t ap = a[i * k + p];
        if (ap == 0) continue;
        const int16_t* bp = b + p * n;
        for (int64_t j = 0; j < n; ++j) row[static_cast<size_t>(j)] += ap * int32_t{bp[j]};
      }
      for (int64_t j = 0; j < n; ++j) out[j] += row[static_cast<size_t>(j)];
    }
  }
}

}  // namespace slmopt::runtime
