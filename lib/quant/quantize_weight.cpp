#include "quant/quantize_weight.hpp"

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/error.hpp"
#include "core/quant_tensor.hpp"
#include "quant/sparse.hpp"

namespace slmopt::quant {

std::vector<float> weight_rows(const Tensor& w, InputAxis axis, int64_t& rows, int64_t& cols) {
  if (w.dtype() != DType::F32 || w.is_quantized()) throw_internal("weight_rows needs an f32 tensor");
  if (w.rank() < 1) throw_bad_input("cannot quantize a scalar");
  const float* src = w.data<float>();
  if (axis == InputAxis::First) {
    if (w.rank() != 2) throw_bad_input("a MatMul weight to quantize must be 2-D, got " + shape_to_string(w.shape()));
    const int64_t k = w.shape()[0], n = w.shape()[1];
    rows = n;
    cols = k;
    std::vector<float> t(static_cast<size_t>(k * n));
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < n; ++j) t[static_cast<size_t>(j * k + i)] = src[i * n + j];
    return t;
  }
  rows = w.shape()[0];
  cols = rows > 0 ? w.numel() / rows : 0;
  return std::vector<float>(src, src + w.numel());
}

std::shared_ptr<QuantTensor> new_quant_tensor(const Tensor& w, InputAxis axis, const Scheme& scheme,
                                              const QuantParams& params, std::vector<float>& rows) {
  scheme.validate(params);
  auto q = std::make_shared<QuantTensor>();
  q->scheme = std::string(scheme.name);
  q->params = params;
  q->shape = w.shape();
  q->transposed = axis == InputAxis::First;
  rows = weight_rows(w, axis, q->rows, q->cols);
  // No code of any scheme stands for NaN or infinity: quantizing one would
  // spread it over its group's scale, or silently turn it into a finite value.
  const auto bad = std::find_if(rows.begin(), rows.end(), [](float v) { return !std::isfinite(v); });
  if (bad != rows.end())
    throw_bad_input("the weight holds a " + std::string(std::isnan(*bad) ? "NaN" : "infinite value") +
                    " (row " + std::to_string((bad - rows.begin()) / std::max<int64_t>(1, q->cols)) +
                    "): no quantized code can stand for it");
  return q;
}

Tensor quantize_weight(const Tensor& w, InputAxis axis, const Scheme& scheme, const QuantParams& params,
                       const QuantizeOptions& options) {
  std::vector<float> m;
  auto q = new_quant_tensor(w, axis, scheme, params, m);
  q->parts = scheme.quantize(m.data(), q->rows, q->cols, params, options);
  validate_quant_tensor(*q);
  return Tensor::quantized(std::move(q));
}

std::vector<uint8_t> sparse_mask_if_smaller(const Tensor& w, InputAxis axis, int code_bits) {
  if (w.dtype() != DType::F32 || w.is_quantized() || w.numel() == 0) return {};
  const float* v = w.data<float>();
  const int64_t n = w.numel();
  const int64_t kept = n - std::count(v, v + n, 0.0f);
  if (!sparse_pays(code_bits, n, kept)) return {};
  if (axis == InputAxis::Rest) {
    int64_t counted = 0;
    return nonzero_mask(v, n, counted);
  }
  int64_t rows = 0, cols = 0, counted = 0;
  const std::vector<float> m = weight_rows(w, axis, rows, cols);
  return nonzero_mask(m.data(), n, counted);
}

Tensor with_sparse_mask(const Tensor& q, std::vector<uint8_t> mask) {
  // Only schemes with a code of their own for every weight can drop some:
  // ternary (five weights a byte), tcq (codes shared through the trellis) and
  // ec (a variable-length stream) stay dense; their zero is exact anyway.
  const QuantTensor& dense = *q.quant();
  bool one_code_each = false;
  for (const auto& part : scheme_or_throw(dense.scheme).layout(dense.params, dense.rows, dense.cols))
    if (part.name == "codes") one_code_each = part.count == dense.rows * dense.cols;
  if (mask.empty() || !one_code_each) return q;
  return Tensor::quantized(std::make_shared<QuantTensor>(make_sparse(*q.quant(), std::move(mask))));
}

void RowDecoder::decode(int64_t row_begin, int64_t row_end, float* out) {
  if (row_begin == row_end) return;
  const Scheme& scheme = scheme_or_throw(q_.scheme);
  if (!is_sparse(q_)) {
    scheme.dequantize(q_, row_begin, row_end, out);
    return;
  }
  if (is_expanded(q_)) {
    scheme.dequantize(q_, row_begin, row_end, out);
    zero_pruned(q_, row_begin, row_end, out);
    return;
  }
  if (row_begin < row_) row_ = kept_before_row_ = 0;
  kept_before_row_ += count_kept_range(q_.parts.back().bytes.data(), row_ * q_.cols, row_begin * q_.cols);
  row_ = row_begin;
  const QuantTensor window = sparse_row_window(q_, row_begin, row_end, kept_before_row_);
  scheme.dequantize(window, 0, window.rows, out);
  zero_pruned(window, 0, window.rows, out);
}

void dequantize_rows(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out) {
  RowDecoder(q).decode(row_begin, row_end, out);
}

Tensor dequantize(const Tensor& t) {
  if (!t.is_quantized()) return t;
  const QuantTensor& q = *t.quant();
  Tensor out(DType::F32, q.shape);
  float* dst = out.mutable_data<float>();
  if (!q.transposed) {
    dequantize_rows(q, 0, q.rows, dst);
    return out;
  }
  std::vector<float> m(static_cast<size_t>(q.rows * q.cols));
  dequantize_rows(q, 0, q.rows, m.data());
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c) dst[c * q.rows + r] = m[static_cast<size_t>(r * q.cols + c)];
  return out;
}

}  // namespace slmopt::quant
