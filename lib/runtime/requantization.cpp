#include "runtime/requantization.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.hpp"

namespace slmopt::runtime {
namespace {

constexpr int64_t kOne31 = int64_t{1} << 31;

// gemmlowp's SaturatingRoundingDoublingHighMul: round(a * b / 2^31), ties
// up (its nudge makes -2.5 -> -2); the one overflowing case (-2^31 * -2^31)
// saturates.
int32_t rounding_doubling_high_mul(int32_t a, int32_t b) {
  if (a == b && a == std::numeric_limits<int32_t>::min()) return std::numeric_limits<int32_t>::max();
  const int64_t ab = int64_t{a} * int64_t{b};
  const int64_t nudge = ab >= 0 ? (int64_t{1} << 30) : 1 - (int64_t{1} << 30);
  return static_cast<int32_t>((ab + nudge) / kOne31);
}

// gemmlowp's RoundingDivideByPOT: x / 2^exponent, ties away from zero.
int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = static_cast<int32_t>((int64_t{1} << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

}  // namespace

std::optional<Requantization> requantization_from_name(std::string_view name) {
  if (name == "exact") return Requantization::Exact;
  if (name == "fixed-point") return Requantization::FixedPoint;
  return std::nullopt;
}

const char* requantization_name(Requantization r) { return r == Requantization::Exact ? "exact" : "fixed-point"; }

FixedPointMultiplier fixed_point_multiplier(double real) {
  if (!std::isfinite(real) || real < 0 || real >= double(int64_t{1} << 30))
    throw_bad_input("requantization multiplier " + std::to_string(real) + " has no fixed-point form");
  if (real == 0) return {};
  int shift = 0;
  const double fraction = std::frexp(real, &shift);  // in [0.5, 1)
  auto q = static_cast<int64_t>(std::round(fraction * static_cast<double>(kOne31)));
  if (q == kOne31) {
    q /= 2;
    ++shift;
  }
  if (shift < -31) return {};
  return {static_cast<int32_t>(q), shift};
}

int32_t multiply_fixed_point(int32_t acc, FixedPointMultiplier m) {
  const int left = m.shift > 0 ? m.shift : 0, right = m.shift > 0 ? 0 : -m.shift;
  const int64_t shifted = int64_t{acc} * (int64_t{1} << left);
  const auto saturated = static_cast<int32_t>(std::clamp<int64_t>(shifted, std::numeric_limits<int32_t>::min(),
                                                                  std::numeric_limits<int32_t>::max()));
  return rounding_divide_by_pot(rounding_doubling_high_mul(saturated, m.multiplier), right);
}

}  // namespace slmopt::runtime
