// The inverse-Hessian factor GPTQ rounds with. For a layer y = W x the
// squared output error of a weight change D is sum_r d_r H d_r^T with
// H = X^T X over the calibration inputs; GPTQ needs U, the upper Cholesky
// factor of H^-1 (H^-1 = U^T U). Plain loops in double, fixed order, no FMA
// contraction: the same H gives the same U on every machine.
#pragma once

#include <cstdint>
#include <vector>

namespace slmopt::quant {

// Lower Cholesky factor of the n x n symmetric matrix a (row-major); false
// when a is not positive definite.
bool cholesky_lower(const std::vector<double>& a, int64_t n, std::vector<double>& l);

// Prepares H for inversion as GPTQ does: inputs that were always zero get
// H_ii = 1 (their weights cannot matter; `dead` marks them), then
// damp * mean(diag) is added to the diagonal. Returns U with H^-1 = U^T U,
// raising the damping tenfold (up to three times) if H is still singular;
// throws Error(BadInput) when that does not help.
std::vector<double> inverse_hessian_factor(std::vector<double> h, int64_t n, double damp, std::vector<bool>& dead);

// sum over rows r of d_r H d_r^T with d = a - b (rows x n, row-major; b null
// means zero): the squared output error of using b for a on the inputs H
// summarises. `grams` holds `groups` n x n matrices; row r uses matrix
// r / (rows / groups).
double hessian_error(const float* a, const float* b, int64_t rows, int64_t n, const double* grams, int64_t groups);

}  // namespace slmopt::quant
