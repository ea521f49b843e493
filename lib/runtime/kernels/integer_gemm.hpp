// Exact integer matrix products for the quantized ops: C (m x n) = A (m x k)
// * B (k x n), row-major, of 8-bit values less their zero points (so each
// operand lies in [-255, 255]), accumulated without rounding.
#pragma once

#include <cstdint>

namespace slmopt::runtime {

// The largest operand magnitude the kernels accept (uint8 or int8 less a zero point).
inline constexpr int kIntegerOperandLimit = 255;

// Plain triple loop in int64; the definition the fast kernel is tested against.
void integer_gemm_reference(int64_t m, int64_t n, int64_t k, const int16_t* a, const int16_t* b, int64_t* c);

// Sums a row's products in int32 over chunks of k short enough that they
// cannot overflow (32768 * 255^2 < 2^31), then in int64: equal to the reference.
void integer_gemm(int64_t m, int64_t n, int64_t k, const int16_t* a, const int16_t* b, int64_t* c);

}  // namespace slmopt::runtime
