// Non-uniform 3- and 4-bit codes: each code indexes a small table of levels in
// [-1, 1], scaled per group. "nf" uses a fixed NormalFloat table (QLoRA's NF4,
// and NF3 built the same way from normal quantiles); "lut" fits one table per
// tensor to its weights by weighted k-means (Lloyd iterations), stored in f16.
#include <algorithm>
#include <cmath>

#include "quant/bitpack.hpp"
#include "quant/group_geometry.hpp"
#include "quant/group_scales.hpp"
#include "quant/scale_store.hpp"
#include "quant/scheme.hpp"
#include "quant/scheme_families.hpp"

namespace slmopt::quant {
namespace {

constexpr float kNF4[16] = {-1.0f,       -0.69619289f, -0.52507304f, -0.39491749f, -0.28444136f, -0.18477344f,
                            -0.09104999f, 0.0f,        0.07958033f,  0.16093017f,  0.24611229f,  0.33791519f,
                            0.4407098f,  0.56261697f,  0.72295673f,  1.0f};
constexpr float kNF3[8] = {-1.0f, -0.47862916f, -0.21714182f, 0.0f, 0.16093017f, 0.33791519f, 0.56261697f, 1.0f};

std::vector<float> normal_float_table(int bits) {
  return bits == 4 ? std::vector<float>(kNF4, kNF4 + 16) : std::vector<float>(kNF3, kNF3 + 8);
}

void validate_lut(const QuantParams& p) {
  if (p.bits != 3 && p.bits != 4)
    throw_bad_input("lookup-table codes are 3 or 4 bits, got " + std::to_string(p.bits));
  validate_group_and_scales(p);
  validate_two_level(p);
}

constexpr int kTableBits = 16;  // fitted tables are stored as f16

std::vector<PartLayout> layout_nf(const QuantParams& p, int64_t rows, int64_t cols) {
  std::vector<PartLayout> parts = {{"codes", p.bits, rows * cols}};
  for (auto& s : group_scales_layout(geometry(p, rows, cols), p)) parts.push_back(s);
  return parts;
}

std::vector<PartLayout> layout_fitted(const QuantParams& p, int64_t rows, int64_t cols) {
  auto parts = layout_nf(p, rows, cols);
  parts.push_back({"table", kTableBits, int64_t{1} << p.bits});
  return parts;
}

// Index of the level nearest to v in an ascending table.
int nearest_level(const std::vector<float>& table, float v) {
  int lo = 0, hi = static_cast<int>(table.size()) - 1;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (v < table[static_cast<size_t>(mid)]) hi = mid;
    else lo = mid;
  }
  return (v - table[static_cast<size_t>(lo)] <= table[static_cast<size_t>(hi)] - v) ? lo : hi;
}

double lut_error(const float* x, const float* w, int64_t n, const std::vector<float>& table, float d) {
  double err = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float xhat = d == 0 ? 0.0f : d * table[static_cast<size_t>(nearest_level(table, x[i] / d))];
    const double e = static_cast<double>(x[i]) - xhat;
    err += (w ? w[i] : 1.0) * e * e;
  }
  return err;
}

// RTN maps the value of largest magnitude onto the table's end of its sign.
// The search also tries the mirrored table (a negative scale), which matters
// because tables need not be symmetric.
float lut_scale(const float* x, const float* w, int64_t n, const std::vector<float>& table, bool search) {
  float extreme = 0;
  for (int64_t i = 0; i < n; ++i)
    if (std::fabs(x[i]) > std::fabs(extreme)) extreme = x[i];
  if (extreme == 0) return 0.0f;
  const float end = extreme > 0 ? table.back() : table.front();
  const float base = end != 0 ? extreme / end : std::fabs(extreme);
  if (!search) return base;
  float best = base;
  double best_err = lut_error(x, w, n, table, base);
  for (int s = 0; s < 24; ++s) {
    const float sign = s < 12 ? 1.0f : -1.0f;
    float d = sign * std::fabs(extreme) * (0.7f + 0.03f * static_cast<float>(s % 12));
    // One least-squares step on the codes this scale gives.
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double t = table[static_cast<size_t>(nearest_level(table, x[i] / d))];
      const double wi = w ? w[i] : 1.0;
      num += wi * x[i] * t;
      den += wi * t * t;
    }
    if (den > 0) d = static_cast<float>(num / den);
    const double err = lut_error(x, w, n, table, d);
    if (err < best_err) {
      best_err = err;
      best = d;
    }
  }
  return best;
}

std::vector<float> fit_scales(const float* w, const Geometry& g, const float* importance,
                              const std::vector<float>& table, bool search, DType scale_dtype) {
  std::vector<float> scales(static_cast<size_t>(g.groups)), scratch;
  for (int64_t gi = 0; gi < g.groups; ++gi) {
    const Span s = group_span(g, gi);
    const float* wt = group_weights(g, s, importance, scratch);
    scales[static_cast<size_t>(gi)] = stored_value(lut_scale(w + s.offset, wt, s.length, table, search), scale_dtype);
  }
  return scales;
}

// Lloyd iterations on the levels: each level moves to the weighted mean of
// the (scale-normalised) weights assigned to it; the scales follow.
std::vector<float> fit_table(const float* w, const Geometry& g, const QuantParams& p, const float* importance) {
  std::vector<float> table = normal_float_table(p.bits);
  std::vector<float> scratch;
  for (int iter = 0; iter < 4; ++iter) {
    const auto scales = fit_scales(w, g, importance, table, false, DType::F32);
    std::vector<double> num(table.size(), 0.0), den(table.size(), 0.0);
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      const Span s = group_span(g, gi);
      const float* wt = group_weights(g, s, importance, scratch);
      const double d = scales[static_cast<size_t>(gi)];
      if (d == 0) continue;
      for (int64_t i = 0; i < s.length; ++i) {
        const float x = w[s.offset + i];
        const size_t k = static_cast<size_t>(nearest_level(table, x / static_cast<float>(d)));
        const double wi = wt ? wt[i] : 1.0;
        num[k] += wi * d * x;
        den[k] += wi * d * d;
      }
    }
    for (size_t k = 0; k < table.size(); ++k)
      if (den[k] > 0) table[k] = static_cast<float>(num[k] / den[k]);
    std::sort(table.begin(), table.end());
  }
  for (auto& v : table) v = stored_value(v, DType::F16);
  return table;
}

std::vector<QuantPart> encode(const float* w, int64_t rows, int64_t cols, const QuantParams& p,
                              const QuantizeOptions& o, const std::vector<float>& table) {
  const Geometry g = geometry(p, rows, cols);
  auto scales = fit_scales(w, g, o.importance, table, o.search, DType::F32);
  std::vector<float> scratch;
  auto scale_parts = store_group_scales(scales, g, p, [&](int64_t gi, float d) {
    const Span s = group_span(g, gi);
    return lut_error(w + s.offset, group_weights(g, s, o.importance, scratch), s.length, table, d);
  });
  BitWriter codes(rows * cols, p.bits);
  for (int64_t gi = 0; gi < g.groups; ++gi) {
    const Span s = group_span(g, gi);
    const float d = scales[static_cast<size_t>(gi)];
    for (int64_t i = 0; i < s.length; ++i)
      codes.put(d == 0 ? static_cast<uint32_t>(nearest_level(table, 0.0f))
                       : static_cast<uint32_t>(nearest_level(table, w[s.offset + i] / d)));
  }
  std::vector<QuantPart> parts = {{"codes", p.bits, rows * cols, codes.take()}};
  for (auto& part : scale_parts) parts.push_back(std::move(part));
  return parts;
}

std::vector<QuantPart> quantize_nf(const float* w, int64_t rows, int64_t cols, const QuantParams& p,
                                   const QuantizeOptions& o) {
  return encode(w, rows, cols, p, o, normal_float_table(p.bits));
}

std::vector<QuantPart> quantize_fitted(const float* w, int64_t rows, int64_t cols, const QuantParams& p,
                                       const QuantizeOptions& o) {
  const auto table = fit_table(w, geometry(p, rows, cols), p, o.importance);
  auto parts = encode(w, rows, cols, p, o, table);
  std::vector<float> stored(table.begin(), table.end());
  parts.push_back({"table", kTableBits, static_cast<int64_t>(table.size()), pack_scales(stored, DType::F16)});
  return parts;
}

// The levels q's codes index: the fixed table, or the fitted one it stores.
std::vector<float> table_of(const QuantTensor& q) {
  const QuantPart* t = q.part("table");
  if (!t) return normal_float_table(q.params.bits);
  std::vector<float> table(static_cast<size_t>(t->count));
  for (int64_t k = 0; k < t->count; ++k) table[static_cast<size_t>(k)] = read_scale(t->bytes.data(), k, DType::F16);
  return table;
}

void dequantize_with_reference(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out, const float* table) {
  const Geometry g = geometry(q.params, q.rows, q.cols);
  const uint8_t* codes = q.part("codes")->bytes.data();
  for (int64_t r = row_begin; r < row_end; ++r)
    for (int64_t c0 = 0; c0 < q.cols;) {
      const int64_t end = group_end(g, c0);
      const float d = read_group_scale(q, g, group_of(g, r, c0));
      for (int64_t c = c0; c < end; ++c)
        out[(r - row_begin) * q.cols + c] = d * table[read_code(codes, r * q.cols + c, q.params.bits)];
      c0 = end;
    }
}

// 4-bit codes in groups within rows (nf4, lut4, q4n): two codes a byte, read
// straight from it; dequantize_with_reference is the plain decoder this must
// equal bit for bit.
void dequantize_with(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out, const float* table) {
  const Geometry g = geometry(q.params, q.rows, q.cols);
  if (q.params.bits != 4 || g.per_tensor || q.cols % 2 != 0 || g.glen % 2 != 0) {
    dequantize_with_reference(q, row_begin, row_end, out, table);
    return;
  }
  const uint8_t* codes = q.part("codes")->bytes.data();
  for (int64_t r = row_begin; r < row_end; ++r) {
    int64_t gi = r * g.gpr;
    for (int64_t c0 = 0; c0 < q.cols; c0 += g.glen, ++gi) {
      const float d = read_group_scale(q, g, gi);
      const int64_t n = std::min(g.glen, q.cols - c0);
      const uint8_t* p = codes + (r * q.cols + c0) / 2;
      float* dst = out + (r - row_begin) * q.cols + c0;
      for (int64_t i = 0; i < n / 2; ++i) {
        dst[2 * i] = d * table[p[i] & 15u];
        dst[2 * i + 1] = d * table[p[i] >> 4];
      }
    }
  }
}

void dequantize_lut(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out) {
  dequantize_with(q, row_begin, row_end, out, table_of(q).data());
}

float nearest_lut(const QuantTensor& q, int64_t row, int64_t col, float v) {
  const Geometry g = geometry(q.params, q.rows, q.cols);
  const float d = read_group_scale(q, g, group_of(g, row, col));
  const std::vector<float> table = table_of(q);
  return d * table[static_cast<size_t>(nearest_level(table, d == 0 ? 0.0f : v / d))];
}

std::vector<QuantPart> encode_lut(const QuantTensor& q, const float* w) {
  const Geometry g = geometry(q.params, q.rows, q.cols);
  const std::vector<float> table = table_of(q);
  BitWriter codes(q.rows * q.cols, q.params.bits);
  for (int64_t gi = 0; gi < g.groups; ++gi) {
    const Span s = group_span(g, gi);
    const float d = read_group_scale(q, g, gi);
    for (int64_t i = 0; i < s.length; ++i)
      codes.put(static_cast<uint32_t>(nearest_level(table, d == 0 ? 0.0f : w[s.offset + i] / d)));
  }
  std::vector<QuantPart> parts = q.parts;
  parts[0].bytes = codes.take();
  return parts;
}

}  // namespace

void dequantize_lut_reference(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out) {
  dequantize_with_reference(q, row_begin, row_end, out, table_of(q).data());
}

const Scheme kNormalFloatScheme = {
    "nf", "3/4-bit codes into a fixed NormalFloat table, scale per group", 0, validate_lut, layout_nf, quantize_nf,
    dequantize_lut,
    nearest_lut,
    encode_lut,
    nullptr,
    nullptr,
};

const Scheme kFittedTableScheme = {
    "lut", "3/4-bit codes into a per-tensor table fitted by weighted k-means", 0, validate_lut, layout_fitted,
    quantize_fitted, dequantize_lut, nearest_lut, encode_lut, nullptr, nullptr,
};

}  // namespace slmopt::quant
