#include "quant/hessian.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace slmopt::quant {

bool cholesky_lower(const std::vector<double>& a, int64_t n, std::vector<double>& l) {
  // Right-looking: after column k is final, its outer product leaves the
  // trailing matrix; rows are updated with contiguous inner loops.
  std::vector<double> t = a, col(static_cast<size_t>(n));
  l.assign(static_cast<size_t>(n * n), 0.0);
  for (int64_t k = 0; k < n; ++k) {
    const double d = t[static_cast<size_t>(k * n + k)];
    if (!(d > 0) || !std::isfinite(d)) return false;
    const double s = std::sqrt(d);
    for (int64_t i = k; i < n; ++i) col[static_cast<size_t>(i)] = t[static_cast<size_t>(i * n + k)] / s;
    col[static_cast<size_t>(k)] = s;
    for (int64_t i = k; i < n; ++i) l[static_cast<size_t>(i * n + k)] = col[static_cast<size_t>(i)];
    for (int64_t i = k + 1; i < n; ++i) {
      const double ci = col[static_cast<size_t>(i)];
      double* row = t.data() + i * n;
      for (int64_t j = k + 1; j <= i; ++j) row[j] -= ci * col[static_cast<size_t>(j)];
    }
  }
  return true;
}

namespace {

// The reversal J (J_ij = 1 where i + j = n - 1) turns the problem around:
// with J H J = L L^T, H^-1 = (J L^-1 J)^T (J L^-1 J), and J L^-1 J is upper
// triangular: one factorization and one triangular inverse.
bool factor(const std::vector<double>& h, int64_t n, std::vector<double>& u) {
  std::vector<double> p(static_cast<size_t>(n * n)), l;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) p[static_cast<size_t>(i * n + j)] = h[static_cast<size_t>((n - 1 - i) * n + (n - 1 - j))];
  if (!cholesky_lower(p, n, l)) return false;
  // Columns of X = L^-1 by forward substitution, reading L's columns as rows of L^T.
  std::vector<double> lt(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) lt[static_cast<size_t>(j * n + i)] = l[static_cast<size_t>(i * n + j)];
  u.assign(static_cast<size_t>(n * n), 0.0);
  std::vector<double> x(static_cast<size_t>(n));
  for (int64_t c = 0; c < n; ++c) {
    std::fill(x.begin(), x.end(), 0.0);
    x[static_cast<size_t>(c)] = 1.0;
    for (int64_t k = c; k < n; ++k) {
      const double xk = x[static_cast<size_t>(k)] / lt[static_cast<size_t>(k * n + k)];
      x[static_cast<size_t>(k)] = xk;
      const double* ltk = lt.data() + k * n;
      for (int64_t i = k + 1; i < n; ++i) x[static_cast<size_t>(i)] -= ltk[i] * xk;
    }
    // x is column c of L^-1: U[n-1-i][n-1-c] = x[i].
    for (int64_t i = c; i < n; ++i) u[static_cast<size_t>((n - 1 - i) * n + (n - 1 - c))] = x[static_cast<size_t>(i)];
  }
  return true;
}

}  // namespace

std::vector<double> inverse_hessian_factor(std::vector<double> h, int64_t n, double damp, std::vector<bool>& dead) {
  dead.assign(static_cast<size_t>(n), false);
  double mean_diag = 0;
  for (int64_t i = 0; i < n; ++i) {
    double& d = h[static_cast<size_t>(i * n + i)];
    if (!(d > 0)) {
      dead[static_cast<size_t>(i)] = true;
      for (int64_t j = 0; j < n; ++j) h[static_cast<size_t>(i * n + j)] = h[static_cast<size_t>(j * n + i)] = 0.0;
      d = 1.0;
    }
    mean_diag += d;
  }
  mean_diag = n ? mean_diag / static_cast<double>(n) : 0.0;
  std::vector<double> u;
  for (int attempt = 0; attempt < 4; ++attempt, damp *= 10) {
    std::vector<double> damped = h;
    for (int64_t i = 0; i < n; ++i) damped[static_cast<size_t>(i * n + i)] += damp * mean_diag;
    if (factor(damped, n, u)) return u;
  }
  throw_bad_input("the layer's input Hessian X^T X is not positive definite even with damping " + std::to_string(damp / 10));
}

double hessian_error(const float* a, const float* b, int64_t rows, int64_t n, const double* grams, int64_t groups) {
  const int64_t per_group = rows / groups;
  // Tiles of rows share each streamed row of H; y = d H by contiguous row
  // updates (vectorizable without reassociation), then d . y per row. Each
  // row's sum is kept apart and added in row order: thread count does not
  // change the result.
  // H and the differences in float: twice the SIMD width, and ample for an
  // error estimate; the per-row dot products are summed in double.
  constexpr int64_t kTile = 8;
  std::vector<float> hf(static_cast<size_t>(groups * n * n));
  for (size_t i = 0; i < hf.size(); ++i) hf[i] = static_cast<float>(grams[i]);
  std::vector<double> row_error(static_cast<size_t>(rows), 0.0);
  const int64_t tiles_per_group = (per_group + kTile - 1) / kTile;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < groups * tiles_per_group; ++t) {
    const int64_t group = t / tiles_per_group;
    const int64_t r0 = group * per_group + (t % tiles_per_group) * kTile;
    const int64_t r1 = std::min((group + 1) * per_group, r0 + kTile), m = r1 - r0;
    const float* h = hf.data() + group * n * n;
    std::vector<float> d(static_cast<size_t>(m * n)), y(static_cast<size_t>(m * n), 0.0f);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t i = 0; i < n; ++i) d[static_cast<size_t>((r - r0) * n + i)] = a[r * n + i] - (b ? b[r * n + i] : 0.0f);
    for (int64_t i = 0; i < n; ++i) {
      const float* hi = h + i * n;
      for (int64_t k = 0; k < m; ++k) {
        const float di = d[static_cast<size_t>(k * n + i)];
        if (di == 0) continue;
        float* yk = y.data() + k * n;
        for (int64_t j = 0; j < n; ++j) yk[j] += di * hi[j];
      }
    }
    for (int64_t k = 0; k < m; ++k) {
      double e = 0;
      for (int64_t j = 0; j < n; ++j)
        e += static_cast<double>(d[static_cast<size_t>(k * n + j)]) * y[static_cast<size_t>(k * n + j)];
      row_error[static_cast<size_t>(r0 + k)] = e;
    }
  }
  double total = 0;
  for (double e : row_error) total += e;
  return total;
}

}  // namespace slmopt::quant
