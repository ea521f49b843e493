#include "passes/sparsegpt.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "quant/hessian.hpp"

namespace slmopt::passes {
namespace {

// The weights of one row to zero among columns [c0, c0 + len), by w^2 / U_jj^2.
void choose(const std::vector<double>& x, const std::vector<double>& u, int64_t n, int64_t c0, int64_t len, int64_t zeros,
            std::vector<float>& scores, std::vector<char>& mask) {
  for (int64_t j = c0; j < c0 + len; ++j) {
    const double d = u[static_cast<size_t>(j * n + j)];
    scores[static_cast<size_t>(j)] = static_cast<float>(x[static_cast<size_t>(j)] * x[static_cast<size_t>(j)] / (d * d));
  }
  for (int64_t j : lowest_positions(scores, c0, len, zeros)) mask[static_cast<size_t>(j)] = 1;
}

}  // namespace

int64_t sparsegpt_prune(std::vector<float>& w, int64_t rows, int64_t n, const double* grams, int64_t groups,
                        const SparsityTarget& target, const SparseGptOptions& options) {
  if (groups < 1 || rows % groups != 0) throw_internal("SparseGPT: rows do not split into the layer's groups");
  const int64_t rows_per_group = rows / groups;
  const int64_t block = target.nm() ? target.m * std::max<int64_t>(1, options.block / target.m) : options.block;
  int64_t zeroed = 0;
  for (int64_t g = 0; g < groups; ++g) {
    std::vector<bool> dead;
    const std::vector<double> u = quant::inverse_hessian_factor(
        std::vector<double>(grams + g * n * n, grams + (g + 1) * n * n), n, options.damp, dead);
#pragma omp parallel for schedule(dynamic, 4) reduction(+ : zeroed)
    for (int64_t r = g * rows_per_group; r < (g + 1) * rows_per_group; ++r) {
      std::vector<double> x(static_cast<size_t>(n));
      for (int64_t j = 0; j < n; ++j) x[static_cast<size_t>(j)] = dead[static_cast<size_t>(j)] ? 0.0 : w[static_cast<size_t>(r * n + j)];
      std::vector<float> scores(static_cast<size_t>(n));
      std::vector<char> mask(static_cast<size_t>(n), 0);
      for (int64_t b0 = 0; b0 < n; b0 += block) {
        const int64_t b1 = std::min(n, b0 + block);
        for (int64_t j = b0; j < b1; ++j) {
          if (target.nm() && j % target.m == 0) {
            const int64_t len = std::min<int64_t>(target.m, n - j);
            choose(x, u, n, j, len, len - target.n, scores, mask);
          } else if (!target.nm() && j == b0) {
            // Row r's share of zeros over [b0, b1): prefixes of the whole
            // matrix, so the total is exactly round(fraction * rows * n).
            const int64_t zeros = zeros_before(target.fraction, r * n + b1) - zeros_before(target.fraction, r * n + b0);
            choose(x, u, n, b0, b1 - b0, zeros, scores, mask);
          }
          const double* uj = u.data() + j * n;
          const double q = mask[static_cast<size_t>(j)] ? 0.0 : x[static_cast<size_t>(j)];
          const double err = (x[static_cast<size_t>(j)] - q) / uj[j];
          w[static_cast<size_t>(r * n + j)] = static_cast<float>(q);
          zeroed += mask[static_cast<size_t>(j)];
          for (int64_t k = j + 1; k < n; ++k) x[static_cast<size_t>(k)] -= err * uj[k];
        }
      }
    }
  }
  return zeroed;
}

}  // namespace slmopt::passes
