// Scales and minimums as they are stored: f16 or f32, read back exactly.
#pragma once

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/half.hpp"
#include "quant/bitpack.hpp"

namespace slmopt::quant {

inline int scale_bits(DType t) { return t == DType::F16 ? 16 : 32; }

// The value a float becomes once stored as t; Error(BadInput) when it does not fit.
inline float stored_value(float v, DType t) {
  if (t == DType::F32) return v;
  const float r = half_to_float(float_to_half(v));
  if (!std::isfinite(r) && std::isfinite(v))
    throw_bad_input("a scale of " + std::to_string(v) + " does not fit in f16; use f32 scales for this tensor");
  return r;
}

inline uint32_t scale_code(float v, DType t) {
  if (t == DType::F16) return float_to_half(v);
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}

inline float scale_from_code(uint32_t code, DType t) {
  if (t == DType::F16) return half_to_float(static_cast<uint16_t>(code));
  float v;
  std::memcpy(&v, &code, 4);
  return v;
}

inline std::vector<uint8_t> pack_scales(const std::vector<float>& values, DType t) {
  BitWriter w(static_cast<int64_t>(values.size()), scale_bits(t));
  for (float v : values) w.put(scale_code(v, t));
  return w.take();
}

inline float read_scale(const uint8_t* bytes, int64_t index, DType t) {
  return scale_from_code(read_code(bytes, index, scale_bits(t)), t);
}

}  // namespace slmopt::quant
