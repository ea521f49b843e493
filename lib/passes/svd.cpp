#include "passes/svd.hpp"

#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <random>

namespace slmopt::passes {
namespace {

// Orthonormal basis of y's columns (thin Householder QR).
MatrixD orthonormalize(const MatrixD& y) {
  Eigen::HouseholderQR<MatrixD> qr(y);
  return qr.householderQ() * MatrixD::Identity(y.rows(), y.cols());
}

// Standard normal values from a fixed generator: Box-Muller over mt19937's
// 32-bit outputs, which every standard library produces alike.
MatrixD gaussian(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 gen(seed);
  auto uniform = [&] { return (static_cast<double>(gen()) + 0.5) / 4294967296.0; };
  MatrixD g(rows, cols);
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t i = 0; i < rows; ++i) {
      const double u1 = uniform(), u2 = uniform();
      g(i, j) = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
    }
  return g;
}

}  // namespace

Svd svd_full(const MatrixD& a) {
  Eigen::BDCSVD<MatrixD> svd(a, Eigen::ComputeThinU | Eigen::ComputeThinV);
  return {svd.matrixU(), svd.singularValues(), svd.matrixV()};
}

Svd svd_randomized(const MatrixD& a, int64_t k, int64_t oversample, int power, uint32_t seed) {
  const int64_t full = std::min<int64_t>(a.rows(), a.cols());
  if (oversample < 0) oversample = std::max<int64_t>(10, k / 2);
  const int64_t probes = std::min(full, k + oversample);
  if (probes >= full) {
    Svd s = svd_full(a);
    const int64_t keep = std::min(k, full);
    return {s.u.leftCols(keep), s.s.head(keep), s.v.leftCols(keep)};
  }
  MatrixD q = orthonormalize(a * gaussian(a.cols(), probes, seed));
  for (int i = 0; i < power; ++i) {
    // Re-orthonormalize on both sides so small singular values survive rounding.
    const MatrixD z = orthonormalize(a.transpose() * q);
    q = orthonormalize(a * z);
  }
  const MatrixD b = q.transpose() * a;  // probes x n
  Eigen::BDCSVD<MatrixD> svd(b, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const int64_t keep = std::min(k, probes);
  return {q * svd.matrixU().leftCols(keep), svd.singularValues().head(keep), svd.matrixV().leftCols(keep)};
}

}  // namespace slmopt::passes
