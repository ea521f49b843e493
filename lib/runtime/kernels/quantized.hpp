// Kernels on quantized weights (QuantTensor inputs): rows of the weight are
// dequantized a block at a time into a small scratch and multiplied at once,
// so a quantized model never holds its float weights in memory.
#pragma once

#include <cstdint>

#include "core/quant_tensor.hpp"
#include "runtime/op_context.hpp"

namespace slmopt::runtime {

// C[m, n] = sum_k A[m, k] * W[n, k], W being q's rows x cols = n x k matrix.
// Returns the bytes of scratch it used.
size_t matmul_quantized_rows(const float* a, int64_t m, const QuantTensor& q, float* c);

// The same product by dequantizing all of W first: the reference the tests
// compare matmul_quantized_rows with.
void matmul_quantized_reference(const float* a, int64_t m, const QuantTensor& q, float* c);

// Gather along axis 0 of a quantized table: only the rows asked for are dequantized.
// Returns false when the layout does not allow it (the caller dequantizes).
bool gather_quantized(OpContext& c);

}  // namespace slmopt::runtime
