#include "calib/gram.hpp"

#include <algorithm>
#include <vector>

namespace slmopt::calib {

void gram_accumulate_reference(const float* x, int64_t rows, int64_t n, double* g) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = i; j < n; ++j)
        g[i * n + j] += static_cast<double>(x[r * n + i]) * static_cast<double>(x[r * n + j]);
}

void gram_accumulate(const float* x, int64_t rows, int64_t n, double* g) {
  constexpr int64_t kBlock = 64;
  std::vector<double> block(static_cast<size_t>(kBlock * n));
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t nb = std::min(kBlock, rows - r0);
    for (int64_t i = 0; i < nb * n; ++i) block[static_cast<size_t>(i)] = x[r0 * n + i];
    const double* xb = block.data();
    // Rows of g are independent; within each, rows of x are added in order.
#pragma omp parallel for schedule(dynamic, 8) if (n >= 128)
    for (int64_t i = 0; i < n; ++i) {
      double* gi = g + i * n;
      for (int64_t b = 0; b < nb; ++b) {
        const double* xr = xb + b * n;
        const double xi = xr[i];
        if (xi == 0) continue;  // adds exact zeros: same sums, and ReLU activations are mostly zero
        for (int64_t j = i; j < n; ++j) gi[j] += xi * xr[j];
      }
    }
  }
}

void gram_symmetrize(int64_t n, double* g) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) g[i * n + j] = g[j * n + i];
}

}  // namespace slmopt::calib
