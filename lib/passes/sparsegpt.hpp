// SparseGPT (Frantar & Alistarh, 2023): prune a layer one input column at a
// time and move each removed weight's contribution onto the columns not yet
// visited, in the proportions the inverse input Hessian gives (the OBS
// update), so the layer's output on the calibration data moves as little as
// possible. The mask is chosen as it goes: per block of 32 columns by
// w^2 / [H^-1]_jj^2 on the updated weights (each row keeps its exact share),
// or per run of M for N:M. Rows are independent and run in parallel with the
// same result for any thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "passes/sparsity.hpp"

namespace slmopt::passes {

struct SparseGptOptions {
  double damp = 0.01;    // fraction of mean(diag H) added to the diagonal
  int64_t block = 32;    // columns whose mask is chosen together (measured: 32 beats 128 on small layers)
};

// Prunes w (rows x n, row-major) in place. `grams` holds `groups` n x n
// X^T X matrices (Conv groups: rows split evenly). Returns the weights zeroed.
int64_t sparsegpt_prune(std::vector<float>& w, int64_t rows, int64_t n, const double* grams, int64_t groups,
                        const SparsityTarget& target, const SparseGptOptions& options);

}  // namespace slmopt::passes
