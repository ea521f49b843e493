// Plain IEEE floats (f16 or f32) as a scheme's codes. A weight kept in float
// becomes one only to be stored sparse (quant/sparse.hpp): pruned float
// weights then share the sparse layout, file sections and kernels of
// quantized ones. Group and scale settings do not apply.
#include <bit>
#include <cstring>

#include "core/half.hpp"
#include "quant/bitpack.hpp"
#include "quant/scheme.hpp"
#include "quant/scheme_families.hpp"

namespace slmopt::quant {
namespace {

void validate_float(const QuantParams& p) {
  if (p.bits != 16 && p.bits != 32) throw_bad_input("float codes have 16 or 32 bits, got " + std::to_string(p.bits));
  require_single_level(p, "float");
}

std::vector<PartLayout> layout_float(const QuantParams& p, int64_t rows, int64_t cols) {
  return {{"codes", p.bits, rows * cols}};
}

std::vector<QuantPart> quantize_float(const float* w, int64_t rows, int64_t cols, const QuantParams& p,
                                      const QuantizeOptions&) {
  BitWriter codes(rows * cols, p.bits);
  for (int64_t i = 0; i < rows * cols; ++i)
    codes.put(p.bits == 32 ? std::bit_cast<uint32_t>(w[i]) : float_to_half(w[i]));
  return {{"codes", p.bits, rows * cols, codes.take()}};
}

void dequantize_float(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out) {
  const uint8_t* codes = q.part("codes")->bytes.data();
  const int64_t first = row_begin * q.cols, n = (row_end - row_begin) * q.cols;
  if (q.params.bits == 32) {
    std::memcpy(out, codes + first * 4, static_cast<size_t>(n) * 4);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, codes + (first + i) * 2, 2);
    out[i] = half_to_float(h);
  }
}

}  // namespace

const Scheme kFloatScheme = {
    "float", "IEEE f16 or f32 values (sparse storage of float weights)", 0, validate_float, layout_float,
    quantize_float, dequantize_float, nullptr, nullptr, nullptr, nullptr,
};

}  // namespace slmopt::quant
