// Ternary weights: {-1, 0, +1} x scale per group. Five codes share a byte
// (3^5 = 243 <= 256), so a weight costs 1.6 bits plus the scales.
// Round-to-nearest keeps weights above 0.7 x mean magnitude (TWN's rule); the
// search finds the exact optimum: the best set of non-zeros is the k largest
// magnitudes for some k, and its scale their weighted mean.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "quant/group_geometry.hpp"
#include "quant/scale_store.hpp"
#include "quant/scheme.hpp"
#include "quant/scheme_families.hpp"

namespace slmopt::quant {
namespace {

constexpr int kTritsPerByte = 5;

void validate_ternary(const QuantParams& p) {
  if (p.bits != 2) throw_bad_input("ternary codes are stored as bits 2 (1.6 bits per weight), got " + std::to_string(p.bits));
  validate_group_and_scales(p);
  require_single_level(p, "ternary");
}

int64_t code_bytes(int64_t n) { return (n + kTritsPerByte - 1) / kTritsPerByte; }

std::vector<PartLayout> layout_ternary(const QuantParams& p, int64_t rows, int64_t cols) {
  const Geometry g = geometry(p, rows, cols);
  return {{"codes", 8, code_bytes(rows * cols)}, {"scales", scale_bits(p.scale_dtype), g.groups}};
}

float ternary_scale(const float* x, const float* w, int64_t n, bool search) {
  auto wt = [&](int64_t i) { return w ? static_cast<double>(w[i]) : 1.0; };
  if (!search) {
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) mean += std::fabs(x[i]);
    const double threshold = n > 0 ? 0.7 * mean / static_cast<double>(n) : 0.0;
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; ++i)
      if (std::fabs(x[i]) > threshold) {
        num += wt(i) * std::fabs(x[i]);
        den += wt(i);
      }
    return den > 0 ? static_cast<float>(num / den) : 0.0f;
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return std::fabs(x[a]) > std::fabs(x[b]); });
  double num = 0, den = 0, best_gain = 0, best_scale = 0;
  for (int64_t i : order) {
    num += wt(i) * std::fabs(x[i]);
    den += wt(i);
    // Error falls by num^2 / den when these k weights are +-scale.
    if (den > 0 && num * num / den > best_gain) {
      best_gain = num * num / den;
      best_scale = num / den;
    }
  }
  return static_cast<float>(best_scale);
}

int trit(float x, float d) {
  // Nearest of {-d, 0, d}.
  if (!(d > 0)) return 0;
  if (x > 0.5f * d) return 1;
  if (x < -0.5f * d) return -1;
  return 0;
}

// Five trits per byte, each weight the nearest of {-d, 0, d} for its group's d.
std::vector<uint8_t> ternary_codes(const float* w, const Geometry& g, const std::vector<float>& scales) {
  std::vector<uint8_t> codes(static_cast<size_t>(code_bytes(g.rows * g.cols)), 0);
  static constexpr uint8_t kPow3[kTritsPerByte] = {1, 3, 9, 27, 81};
  for (int64_t gi = 0; gi < g.groups; ++gi) {
    const Span s = group_span(g, gi);
    const float d = scales[static_cast<size_t>(gi)];
    for (int64_t i = 0; i < s.length; ++i) {
      const int64_t at = s.offset + i;
      codes[static_cast<size_t>(at / kTritsPerByte)] += static_cast<uint8_t>((trit(w[at], d) + 1) * kPow3[at % kTritsPerByte]);
    }
  }
  return codes;
}

std::vector<QuantPart> quantize_ternary(const float* w, int64_t rows, int64_t cols, const QuantParams& p,
                                        const QuantizeOptions& o) {
  const Geometry g = geometry(p, rows, cols);
  std::vector<float> scales(static_cast<size_t>(g.groups)), scratch;
  for (int64_t gi = 0; gi < g.groups; ++gi) {
    const Span s = group_span(g, gi);
    const float* wt = group_weights(g, s, o.importance, scratch);
    scales[static_cast<size_t>(gi)] = stored_value(ternary_scale(w + s.offset, wt, s.length, o.search), p.scale_dtype);
  }
  return {{"codes", 8, code_bytes(rows * cols), ternary_codes(w, g, scales)},
          {"scales", scale_bits(p.scale_dtype), g.groups, pack_scales(scales, p.scale_dtype)}};
}

float nearest_ternary(const QuantTensor& q, int64_t row, int64_t col, float v) {
  const Geometry g = geometry(q.params, q.rows, q.cols);
  const float d = read_scale(q.part("scales")->bytes.data(), group_of(g, row, col), q.params.scale_dtype);
  return d * static_cast<float>(trit(v, d));
}

std::vector<QuantPart> encode_ternary(const QuantTensor& q, const float* w) {
  std::vector<QuantPart> parts = q.parts;
  parts[0].bytes = ternary_codes(w, geometry(q.params, q.rows, q.cols), stored_scales(q));
  return parts;
}

void dequantize_ternary(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out) {
  const Geometry g = geometry(q.params, q.rows, q.cols);
  const uint8_t* codes = q.part("codes")->bytes.data();
  const uint8_t* scales = q.part("scales")->bytes.data();
  static constexpr int kDiv3[kTritsPerByte] = {1, 3, 9, 27, 81};
  for (int64_t r = row_begin; r < row_end; ++r)
    for (int64_t c0 = 0; c0 < q.cols;) {
      const int64_t end = group_end(g, c0);
      const float d = read_scale(scales, group_of(g, r, c0), q.params.scale_dtype);
      for (int64_t c = c0; c < end; ++c) {
        const int64_t at = r * q.cols + c;
        // A hostile byte above 242 still decodes to a trit in {0, 1, 2}.
        const int t = (codes[at / kTritsPerByte] / kDiv3[at % kTritsPerByte]) % 3;
        out[(r - row_begin) * q.cols + c] = static_cast<float>(t - 1) * d;
      }
      c0 = end;
    }
}

}  // namespace

const Scheme kTernaryScheme = {
    "ternary", "{-1, 0, +1} x scale per group (1.6 bits)", 2, validate_ternary, layout_ternary, quantize_ternary,
    dequantize_ternary,
    nearest_ternary,
    encode_ternary,
    stored_scales,
    nullptr,
};

}  // namespace slmopt::quant
