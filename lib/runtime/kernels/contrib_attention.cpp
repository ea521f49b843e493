// com.microsoft Attention and MultiHeadAttention. Attention is the fused self-attention ONNX Runtime's transformer
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

#include "runtime/kernels/attention_core.hpp"
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
  static const char* const kRefused[] = {"past state", "attention_bias", "past_sequence_length"};
  for (size_t i = 4; i < c.input_count(); ++i)
    if (c.has_input(i)) c.fail(std::string("Attention with ") + kRefused[std::min<size_t>(i - 4, 2)] + " is not supported");
  if (c.attr_int("do_rotary", 0) != 0) c.fail("Attention with do_rotary is not supported");
  if (c.wants_output(1)) c.fail("Attention's present output is not supported");
  AttentionShape s{x.shape()[0], x.shape()[1], x.shape()[2], c.attr_int("num_heads", 0)};
  if (s.heads <= 0) c.fail("Attention needs a positive num_heads");
  const std::vector<int64_t> sizes = c.attr_ints("qkv_hidden_sizes");
  if (sizes.empty()) {
    if (w.shape()[1] % 3 != 0)
      c.fail("Attention weights' width " + std::to_string(w.shape()[1]) + " is not 3 equal sections");
    s.q = s.k = s.v = w.shape()[1] / 3;
  } else if (sizes.size() == 3) {
    s.q = sizes[0], s.k = sizes[1], s.v = sizes[2];
  } else {
    c.fail("Attention qkv_hidden_sizes must have 3 values");
  }
  if (s.q <= 0 || s.v <= 0 || s.q != s.k || s.width() != w.shape()[1] || s.q % s.heads != 0 || s.v % s.heads != 0)
    c.fail("Attention hidden sizes " + std::to_string(s.q) + ", " + std::to_string(s.k) + ", " + std::to_string(s.v) +
           " do not split weights of width " + std::to_string(w.shape()[1]) + " into " + std::to_string(s.heads) +
           " heads");
  if (c.has_input(2)) {
    const Tensor& b = c.input(2);
    if (b.dtype() != DType::F32 || b.rank() != 1 || b.shape()[0] != s.width())
      c.fail("Attention bias must be f32 [" + std::to_string(s.width()) + "], got " + shape_to_string(b.shape()));
  }
  return s;
}

// The additive mask of each batch entry, [batch][seq * keys], from the mask
// at input `index` (when given) and `unidirectional`.
std::vector<std::vector<float>> mask_bias(const OpContext& c, size_t index, const std::string& what, int64_t batch,
                                          int64_t seq, int64_t keys) {
  const float filter = c.attr_float("mask_filter_value", -10000.0f);
  const bool causal = c.attr_int("unidirectional", 0) != 0;
  std::vector<std::vector<float>> bias(static_cast<size_t>(batch),
                                       std::vector<float>(static_cast<size_t>(seq * keys), 0.0f));
  if (c.has_input(index)) {
    const Tensor& m = c.input(index);
    if (m.dtype() != DType::I32 && m.dtype() != DType::I64) c.fail(c.node.op_type + " " + what + " must be int32");
    const std::vector<int64_t> v = int_values(m);
    const auto& d = m.shape();
    const bool ends = d.size() == 1 && (d[0] == batch || d[0] == 2 * batch);
    const bool raw2 = d.size() == 2 && d[0] == batch && d[1] == keys;
    const bool raw3 = d.size() == 3 && d[0] == batch && d[1] == seq && d[2] == keys;
    if (!ends && !raw2 && !raw3)
      c.fail(c.node.op_type + " " + what + " of shape " + shape_to_string(d) + " is not supported");
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < seq; ++i)
        for (int64_t t = 0; t < keys; ++t) {
          bool masked;
          if (ends)
            masked = t >= v[static_cast<size_t>(b)] || (d[0] == 2 * batch && t < v[static_cast<size_t>(batch + b)]);
          else
            masked = v[static_cast<size_t>(raw2 ? b * keys + t : (b * seq + i) * keys + t)] <= 0;
          if (masked) bias[static_cast<size_t>(b)][static_cast<size_t>(i * keys + t)] = filter;
        }
  }
  if (causal)  // query i sees keys up to i + (keys - seq): the newest query is aligned with the newest key
    for (auto& rows : bias)
      for (int64_t i = 0; i < seq; ++i)
        for (int64_t t = i + keys - seq + 1; t < keys; ++t) rows[static_cast<size_t>(i * keys + t)] = filter;
  return bias;
}

float attention_scale(const OpContext& c, int64_t head_width) {
  const float given = c.attr_float("scale", 0.0f);
  return given != 0.0f ? given : static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_width)));
}

void attention_op(OpContext& c) {
  const AttentionShape s = check_attention(c);
  const int64_t rows = s.batch * s.seq, W = s.width();
  const int64_t dq = s.q / s.heads, dv = s.v / s.heads;
  const std::vector<std::vector<float>> mask = mask_bias(c, 3, "mask_index", s.batch, s.seq, s.seq);
  std::vector<float> qkv(static_cast<size_t>(rows * W));
  sgemm(rows, W, s.in, row_major(c.input(0).data<float>(), s.in), row_major(c.input(1).data<float>(), W), qkv.data(),
        W);
  if (c.has_input(2))
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < W; ++j) qkv[static_cast<size_t>(r * W + j)] += c.input(2).data<float>()[j];
  Tensor out(DType::F32, {s.batch, s.seq, s.v});
  AttentionParams p{s.batch, s.heads,
                    s.heads, attention_scale(c, dq),
                    0.0f,    [&](int64_t b, int64_t) { return mask[static_cast<size_t>(b)].data(); }};
  const int64_t stride = s.seq * W;
  attend(p, {qkv.data(), stride, dq, W, s.seq, dq}, {qkv.data() + s.q, stride, dq, W, s.seq, dq},
         {qkv.data() + 2 * s.q, stride, dv, W, s.seq, dv}, out.mutable_data<float>(), s.seq * s.v, dv, s.v);
  c.output(0) = std::move(out);
}

// MultiHeadAttention: query [batch, seq, q], key [batch, keys, q] and value
// [batch, keys, v] already projected, an optional bias [q + q + v] added to
// them, key_padding_mask as Attention's mask_index. Packed q/k/v layouts,
// attention_bias, past and present state are refused by name.
void multi_head_attention_op(OpContext& c) {
  static const char* const kRefused[] = {"", "", "", "", "", "attention_bias", "past_key", "past_value"};
  for (size_t i = 5; i < c.input_count(); ++i)
    if (c.has_input(i))
      c.fail(std::string("MultiHeadAttention with ") + (i < 8 ? kRefused[i] : "that input") + " is not supported");
  if (c.wants_output(1) || c.wants_output(2)) c.fail("MultiHeadAttention's present outputs are not supported");
  if (!c.has_input(1) || !c.has_input(2)) c.fail("MultiHeadAttention with packed query/key/value is not supported");
  const Tensor& q = c.input(0);
  const Tensor& k = c.input(1);
  const Tensor& v = c.input(2);
  for (const Tensor* t : {&q, &k, &v})
    if (t->dtype() != DType::F32 || t->rank() != 3)
      c.fail("MultiHeadAttention takes f32 query, key and value of rank 3");
  const int64_t batch = q.shape()[0], seq = q.shape()[1], keys = k.shape()[1], heads = c.attr_int("num_heads", 0);
  const int64_t dq = q.shape()[2], dv = v.shape()[2];
  if (k.shape()[0] != batch || v.shape()[0] != batch || v.shape()[1] != keys || k.shape()[2] != dq || heads <= 0 ||
      dq % heads != 0 || dv % heads != 0)
    c.fail("MultiHeadAttention query " + shape_to_string(q.shape()) + ", key " + shape_to_string(k.shape()) +
           " and value " + shape_to_string(v.shape()) + " do not make " + std::to_string(heads) + " heads");
  std::vector<float> qb(q.data<float>(), q.data<float>() + q.numel()), kb(k.data<float>(), k.data<float>() + k.numel()),
      vb(v.data<float>(), v.data<float>() + v.numel());
  if (c.has_input(3)) {
    const Tensor& b = c.input(3);
    if (b.dtype() != DType::F32 || b.rank() != 1 || b.shape()[0] != 2 * dq + dv)
      c.fail("MultiHeadAttention bias must be f32 [" + std::to_string(2 * dq + dv) + "], got " +
             shape_to_string(b.shape()));
    const float* bias = b.data<float>();
    for (size_t i = 0; i < qb.size(); ++i) qb[i] += bias[i % static_cast<size_t>(dq)];
    for (size_t i = 0; i < kb.size(); ++i) kb[i] += bias[dq + static_cast<int64_t>(i % static_cast<size_t>(dq))];
    for (size_t i = 0; i < vb.size(); ++i) vb[i] += bias[2 * dq + static_cast<int64_t>(i % static_cast<size_t>(dv))];
  }
  const std::vector<std::vector<float>> mask = mask_bias(c, 4, "key_padding_mask", batch, seq, keys);
  Tensor out(DType::F32, {batch, seq, dv});
  AttentionParams p{batch, heads,
                    heads, attention_scale(c, dq / heads),
                    0.0f,  [&](int64_t b, int64_t) { return mask[static_cast<size_t>(b)].data(); }};
  attend(p, {qb.data(), seq * dq, dq / heads, dq, seq, dq / heads},
         {kb.data(), keys * dq, dq / heads, dq, keys, dq / heads},
         {vb.data(), keys * dv, dv / heads, dv, keys, dv / heads}, out.mutable_data<float>(), seq * dv, dv / heads, dv);
  c.output(0) = std::move(out);
}

}  // namespace

void register_contrib_attention(KernelRegistry& r) {
  r.add("com.microsoft", "Attention", attention_op);
  r.add("com.microsoft", "MultiHeadAttention", multi_head_attention_op);
}

}  // namespace slmopt::runtime
