// How an integer product's accumulator becomes an 8-bit output
// (QLinearConv, QLinearMatMul): y = zero_point + round(acc * real_multiplier),
// real_multiplier = input_scale * weight_scale / output_scale.
//
// Exact is ONNX's definition, the multiplication done in double (what ONNX
// Runtime computes, up to float rounding). FixedPoint is what integer-only
// devices do (TensorFlow Lite Micro, CMSIS-NN, gemmlowp): the multiplier
// becomes a 32-bit fraction and a power-of-two shift, and the product is
// rounded twice in integer arithmetic, so our runtime gives the device's bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace slmopt::runtime {

enum class Requantization { Exact, FixedPoint };

std::optional<Requantization> requantization_from_name(std::string_view name);  // "exact", "fixed-point"
const char* requantization_name(Requantization r);

// real ~= multiplier * 2^(shift - 31), multiplier in [2^30, 2^31) (0 for a zero real).
struct FixedPointMultiplier {
  int32_t multiplier = 0;
  int shift = 0;
};

// TFLite's QuantizeMultiplier: frexp, the fraction rounded half away from
// zero to 31 bits. Reals below 2^-32 become zero. Throws Error(BadInput) for
// a negative, non-finite or too large (>= 2^30) multiplier.
FixedPointMultiplier fixed_point_multiplier(double real);

// TFLite's MultiplyByQuantizedMultiplier: a saturating rounding doubling
// high multiply (ties up), then a rounding right shift (ties away from zero). A left
// shift that would overflow int32 saturates instead of wrapping.
int32_t multiply_fixed_point(int32_t acc, FixedPointMultiplier m);

}  // namespace slmopt::runtime
