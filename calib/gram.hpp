// Accumulating X^T X, the input Gram matrix GPTQ and activation-aware scaling
// need, in double precision with a fixed summation order: each element adds
// the rows in order, so the result does not depend on blocking or threads.
#pragma once

#include <cstdint>

namespace slmopt::calib {

// g (n x n, row-major) += sum over the rows of x (rows x n floats) of x_r x_r^T.
// Only the upper triangle (j >= i) is updated; gram_symmetrize fills the rest.
void gram_accumulate(const float* x, int64_t rows, int64_t n, double* g);
void gram_accumulate_reference(const float* x, int64_t rows, int64_t n, double* g);
void gram_symmetrize(int64_t n, double* g);

}  // namespace slmopt::calib
