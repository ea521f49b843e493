// com.microsoft Attention, the fused self-attention ONNX Runtime's transformer
// optimizer writes for BERT- and GPT-2-style models: one packed q|k|v
// projection (weights [in, q + k + v], optional bias), `num_heads` heads,
// scaled dot products with an optional key mask and causal mask
// (`unidirectional`), softmax, and the heads' contexts side by side
// ([batch, seq, v]). The output projection stays outside, a MatMul.
//
// Masks as ONNX Runtime reads them (mask_index, int32): [batch] end positions
// (keys from there on masked), [2 * batch] end then start positions,
// [batch, keys] or [batch, seq, keys] raw (0 masks a key). A masked score gets
// `mask_filter_value` (default -10000) added, as ONNX Runtime does, so a fully
// masked row stays finite. Past state, attention_bias and rotary embedding are
// refused by name.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "runtime/kernels/kernel_util.hpp"
#include "runtime/kernels/sgemm.hpp"

namespace slmopt::runtime {
namespace {

struct AttentionShape {
  int64_t batch = 0, seq = 0, in = 0, heads = 0;
  int64_t q = 0, k = 0, v = 0;  // hidden sizes of the three sections
  int64_t width() const { return q + k + v; }
};

AttentionShape check_attention(const OpContext& c) {
  const Tensor& x = c.input(0);
  const Tensor& w = c.input(1);
  if (x.dtype() != DType::F32 || w.dtype() != DType::F32) c.fail("Attention runs on f32 input and weights");
  if (x.rank() != 3) c.fail("Attention input must be [batch, seq, hidden], got " + shape_to_string(x.shape()));
  if (w.rank() != 2 || w.shape()[0] != x.shape()[2])
    c.fail("Attention weights " + shape_to_string(w.shape()) + " do not take input " + shape_to_string(x.shape()));
  for (size_t i = 4; i < c.input_count(); ++i)
    if (c.has_input(i)) c.fail(std::string("Attention with ") + (i == 4 ? "past state" : i == 5 ? "attention_bias" : "past_sequence_length") + " is not supported");
  if (c.attr_int("do_rotary", 0) != 0) c.fail("Attention with do_rotary is not supported");
  if (c.wants_output(1)) c.fail("Attention's present output is not supported");
  AttentionShape s{x.shape()[0], x.shape()[1], x.shape()[2], c.attr_int("num_heads", 0)};
  if (s.heads <= 0) c.fail("Attention needs a positive num_heads");
  const std::vector<int64_t> sizes = c.attr_ints("qkv_hidden_sizes");
  if (sizes.empty()) {
    if (w.shape()[1] % 3 != 0) c.fail("Attention weights' width " + std::to_string(w.shape()[1]) + " is not 3 equal sections");
    s.q = s.k = s.v = w.shape()[1] / 3;
  } else if (sizes.size() == 3) {
    s.q = sizes[0], s.k = sizes[1], s.v = sizes[2];
  } else {
    c.fail("Attention qkv_hidden_sizes must have 3 values");
  }
  if (s.q <= 0 || s.v <= 0 || s.q != s.k || s.width() != w.shape()[1] || s.q % s.heads != 0 || s.v % s.heads != 0)
    c.fail("Attention hidden sizes " + std::to_string(s.q) + ", " + std::to_string(s.k) + ", " + std::to_string(s.v) +
           " do not split weights of width " + std::to_string(w.shape()[1]) + " into " + std::to_string(s.heads) + " heads");
  if (c.has_input(2)) {
    const Tensor& b = c.input(2);
    if (b.dtype() != DType::F32 || b.rank() != 1 || b.shape()[0] != s.width())
      c.fail("Attention bias must be f32 [" + std::to_string(s.width()) + "], got " + shape_to_string(b.shape()));
  }
  return s;
}

// The additive mask of each batch entry, [batch][seq * seq].
std::vector<std::vector<float>> mask_bias(const OpContext& c, const AttentionShape& s) {
  const float filter = c.attr_float("mask_filter_value", -10000.0f);
  const bool causal = c.attr_int("unidirectional", 0) != 0;
  const int64_t T = s.seq;
  std::vector<std::vector<float>> bias(static_cast<size_t>(s.batch), std::vector<float>(static_cast<size_t>(s.seq * T), 0.0f));
  if (c.has_input(3)) {
    const Tensor& m = c.input(3);
    if (m.dtype() != DType::I32 && m.dtype() != DType::I64) c.fail("Attention mask_index must be int32");
    const std::vector<int64_t> v = int_values(m);
    const auto& d = m.shape();
    const bool ends = d.size() == 1 && (d[0] == s.batch || d[0] == 2 * s.batch);
    const bool raw2 = d.size() == 2 && d[0] == s.batch && d[1] == T;
    const bool raw3 = d.size() == 3 && d[0] == s.batch && d[1] == s.seq && d[2] == T;
    if (!ends && !raw2 && !raw3) c.fail("Attention mask_index of shape " + shape_to_string(d) + " is not supported");
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t i = 0; i < s.seq; ++i)
        for (int64_t t = 0; t < T; ++t) {
          bool masked;
          if (ends) masked = t >= v[static_cast<size_t>(b)] || (d[0] == 2 * s.batch && t < v[static_cast<size_t>(s.batch + b)]);
          else masked = v[static_cast<size_t>(raw2 ? b * T + t : (b * s.seq + i) * T + t)] <= 0;
          if (masked) bias[static_cast<size_t>(b)][static_cast<size_t>(i * T + t)] = filter;
        }
  }
  if (causal)
    for (auto& rows : bias)
      for (int64_t i = 0; i < s.seq; ++i)
        for (int64_t t = i + 1; t < T; ++t) rows[static_cast<size_t>(i * T + t)] = filter;
  return bias;
}

void attention_op(OpContext& c) {
  const AttentionShape s = check_attention(c);
  const int64_t rows = s.batch * s.seq, W = s.width();
  const int64_t dq = s.q / s.heads, dv = s.v / s.heads;
  const float scale = c.attr_float("scale", 0.0f) != 0.0f ? c.attr_float("scale", 0.0f)
                                                          : static_cast<float>(1.0 / std::sqrt(static_cast<double>(dq)));
  const std::vector<std::vector<float>> bias = mask_bias(c, s);

  std::vector<float> qkv(static_cast<size_t>(rows * W));
  sgemm(rows, W, s.in, row_major(c.input(0).data<float>(), s.in), row_major(c.input(1).data<float>(), W), qkv.data(), W);
  if (c.has_input(2))
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < W; ++j) qkv[static_cast<size_t>(r * W + j)] += c.input(2).data<float>()[j];

  Tensor out(DType::F32, {s.batch, s.seq, s.v});
  std::vector<float> scores(static_cast<size_t>(s.seq * s.seq));
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.heads; ++h) {
      const float* base = qkv.data() + b * s.seq * W;
      const MatrixView q{base + h * dq, W, 1};
      const MatrixView kt{base + s.q + h * dq, 1, W};  // K transposed: element (p, t) is key t's p-th value
      sgemm(s.seq, s.seq, dq, q, kt, scores.data(), s.seq);
      const std::vector<float>& add = bias[static_cast<size_t>(b)];
      for (int64_t i = 0; i < s.seq; ++i) {
        float* row = scores.data() + i * s.seq;
        float top = -INFINITY;
        for (int64_t t = 0; t < s.seq; ++t) {
          row[t] = row[t] * scale + add[static_cast<size_t>(i * s.seq + t)];
          top = std::max(top, row[t]);
        }
        double sum = 0;
        for (int64_t t = 0; t < s.seq; ++t) sum += (row[t] = std::exp(row[t] - top));
        for (int64_t t = 0; t < s.seq; ++t) row[t] = static_cast<float>(row[t] / sum);
      }
      const MatrixView values{base + s.q + s.k + h * dv, W, 1};
      sgemm(s.seq, dv, s.seq, row_major(scores.data(), s.seq), values,
            out.mutable_data<float>() + b * s.seq * s.v + h * dv, s.v);
    }
  c.output(0) = std::move(out);
}

}  // namespace

void register_contrib_attention(KernelRegistry& r) { r.add("com.microsoft", "Attention", attention_op); }

}  // namespace slmopt::runtime
