// Binary weights: sign x scale per group, 1 bit per weight plus the scales.
// The scale is the (importance-weighted) mean magnitude, which is the
// least-squares optimum for sign codes, so there is nothing to search.
#include <cmath>

#include "quant/bitpack.hpp"
#include "quant/group_geometry.hpp"
#include "quant/scale_store.hpp"
#include "quant/scheme.hpp"
#include "quant/scheme_families.hpp"

namespace slmopt::quant {
namespace {

void validate_binary(const QuantParams& p) {
  if (p.bits != 1) throw_bad_input("binary codes have 1 bit, got bits " + std::to_string(p.bits));
  validate_group_and_scales(p);
  require_single_level(p, "binary");
}

std::vector<PartLayout> layout_binary(const QuantParams& p, int64_t rows, int64_t cols) {
  const Geometry g = geometry(p, rows, cols);
  return {{"codes", 1, rows * cols}, {"scales", scale_bits(p.scale_dtype), g.groups}};
}

std::vector<QuantPart> quantize_binary(const float* w, int64_t rows, int64_t cols, const QuantParams& p,
                                       const QuantizeOptions& o) {
  const Geometry g = geometry(p, rows, cols);
  std::vector<float> scales(static_cast<size_t>(g.groups)), scratch;
  BitWriter codes(rows * cols, 1);
  for (int64_t gi = 0; gi < g.groups; ++gi) {
    const Span s = group_span(g, gi);
    const float* wt = group_weights(g, s, o.importance, scratch);
    double num = 0, den = 0;
    for (int64_t i = 0; i < s.length; ++i) {
      const double wi = wt ? wt[i] : 1.0;
      num += wi * std::fabs(w[s.offset + i]);
      den += wi;
    }
    scales[static_cast<size_t>(gi)] = stored_value(den > 0 ? static_cast<float>(num / den) : 0.0f, p.scale_dtype);
    for (int64_t i = 0; i < s.length; ++i) codes.put(w[s.offset + i] >= 0 ? 1u : 0u);
  }
  return {{"codes", 1, rows * cols, codes.take()},
          {"scales", scale_bits(p.scale_dtype), g.groups, pack_scales(scales, p.scale_dtype)}};
}

float nearest_binary(const QuantTensor& q, int64_t row, int64_t col, float v) {
  const Geometry g = geometry(q.params, q.rows, q.cols);
  const float d = read_scale(q.part("scales")->bytes.data(), group_of(g, row, col), q.params.scale_dtype);
  return v >= 0 ? d : -d;
}

std::vector<QuantPart> encode_binary(const QuantTensor& q, const float* w) {
  BitWriter codes(q.rows * q.cols, 1);
  for (int64_t i = 0; i < q.rows * q.cols; ++i) codes.put(w[i] >= 0 ? 1u : 0u);
  std::vector<QuantPart> parts = q.parts;
  parts[0].bytes = codes.take();
  return parts;
}

void dequantize_binary(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out) {
  const Geometry g = geometry(q.params, q.rows, q.cols);
  const uint8_t* codes = q.part("codes")->bytes.data();
  const uint8_t* scales = q.part("scales")->bytes.data();
  for (int64_t r = row_begin; r < row_end; ++r)
    for (int64_t c0 = 0; c0 < q.cols;) {
      const int64_t end = group_end(g, c0);
      const float d = read_scale(scales, group_of(g, r, c0), q.params.scale_dtype);
      for (int64_t c = c0; c < end; ++c)
        out[(r - row_begin) * q.cols + c] = read_code(codes, r * q.cols + c, 1) ? d : -d;
      c0 = end;
    }
}

}  // namespace

const Scheme kBinaryScheme = {
    "binary", "sign x scale per group (1 bit)", 1, validate_binary, layout_binary, quantize_binary, dequantize_binary,
    nearest_binary, encode_binary, stored_scales, nullptr,
};

}  // namespace slmopt::quant
