// GPTQ (Frantar et al., 2022): round a layer's weights one input column at a
// time and spread each rounding error over the columns not yet rounded, in
// the proportions the inverse input Hessian gives, so the layer's output on
// the calibration data moves as little as possible.
//
// Scales are fitted first on the whole matrix (importance-weighted by
// diag(H), "static groups"), so any scheme with `nearest` and `encode` hooks
// works with any group size, and activation ordering needs no group
// bookkeeping. Rows are independent and run in parallel with identical
// results for any thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.hpp"
#include "quant/quantize_weight.hpp"
#include "quant/scheme.hpp"

namespace slmopt::quant {

struct GptqOptions {
  double damp = 0.01;     // fraction of mean(diag H) added to the diagonal
  bool act_order = true;  // round the inputs with the largest H_ii first
  // Weights that are exactly 0 (pruned) stay 0 and the others absorb their
  // share of the error, as in SparseGPT; for weights stored sparse.
  bool keep_zeros = false;
};

// Rounds rows [row_begin, row_end) of w (rows x n, row-major) in place onto
// `fitted`'s grid. `gram` is the layer's n x n X^T X.
void gptq_round_rows(std::vector<float>& w, int64_t n, int64_t row_begin, int64_t row_end, const double* gram,
                     const Scheme& scheme, const QuantTensor& fitted, const GptqOptions& options);

// quantize_weight with GPTQ. `grams` holds `groups` n x n matrices (Conv
// groups: output rows split evenly, each group with its own inputs).
Tensor quantize_weight_gptq(const Tensor& w, InputAxis axis, const Scheme& scheme, const QuantParams& params,
                            const QuantizeOptions& options, const double* grams, int64_t groups,
                            const GptqOptions& gptq);

}  // namespace slmopt::quant
