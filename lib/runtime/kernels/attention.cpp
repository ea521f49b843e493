// ONNX Attention (opset 23): scaled dot-product attention over q_num_heads
// query heads and kv_num_heads key/value heads (grouped-query when fewer;
// query head h reads key/value head h / (q_num_heads / kv_num_heads)).
// Inputs are [batch, seq, heads * head_size] with the head counts as
// attributes, or [batch, heads, seq, head_size]. attn_mask is boolean (true
// attends) or additive, broadcast to [batch, q_heads, seq, keys]; a mask
// shorter than the keys masks the rest. is_causal lets query i see keys up
// to i plus the past length. past_key/past_value are prepended to K and V,
// and present_key/present_value are the results. nonpad_kv_seqlen (opset 24)
// and the qk_matmul_output are refused by name.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "runtime/kernels/attention_core.hpp"
#include "runtime/kernels/kernel_util.hpp"

namespace slmopt::runtime {
namespace {

struct Geometry {
  bool three_d = false;
  int64_t batch = 0, seq = 0, keys = 0, past = 0;  // keys: the new ones; past + keys in all
  int64_t q_heads = 0, kv_heads = 0, dq = 0, dv = 0;
  int64_t total() const { return past + keys; }
};

Geometry check_geometry(const OpContext& c) {
  const Tensor& q = c.input(0);
  const Tensor& k = c.input(1);
  const Tensor& v = c.input(2);
  for (const Tensor* t : {&q, &k, &v})
    if (t->dtype() != DType::F32) c.fail("Attention runs on f32 Q, K and V");
  if (q.rank() != k.rank() || q.rank() != v.rank() || (q.rank() != 3 && q.rank() != 4))
    c.fail("Attention Q, K and V must all be 3-D or all 4-D, got " + shape_to_string(q.shape()) + ", " +
           shape_to_string(k.shape()) + ", " + shape_to_string(v.shape()));
  Geometry g;
  g.three_d = q.rank() == 3;
  g.batch = q.shape()[0];
  if (g.three_d) {
    g.q_heads = c.attr_int("q_num_heads", 0);
    g.kv_heads = c.attr_int("kv_num_heads", 0);
    if (g.q_heads <= 0 || g.kv_heads <= 0) c.fail("Attention with 3-D inputs needs q_num_heads and kv_num_heads");
    if (q.shape()[2] % g.q_heads != 0 || k.shape()[2] % g.kv_heads != 0 || v.shape()[2] % g.kv_heads != 0)
      c.fail("Attention hidden sizes do not split into " + std::to_string(g.q_heads) + " and " +
             std::to_string(g.kv_heads) + " heads");
    g.seq = q.shape()[1];
    g.keys = k.shape()[1];
    g.dq = q.shape()[2] / g.q_heads;
    g.dv = v.shape()[2] / g.kv_heads;
    if (k.shape()[2] / g.kv_heads != g.dq) c.fail("Attention key heads are not as wide as query heads");
  } else {
    g.q_heads = q.shape()[1];
    g.kv_heads = k.shape()[1];
    g.seq = q.shape()[2];
    g.keys = k.shape()[2];
    g.dq = q.shape()[3];
    g.dv = v.shape()[3];
    if (k.shape()[3] != g.dq || v.shape()[1] != g.kv_heads) c.fail("Attention K and V heads do not match Q's");
  }
  if (k.shape()[0] != g.batch || v.shape()[0] != g.batch || v.shape()[g.three_d ? 1 : 2] != g.keys)
    c.fail("Attention K " + shape_to_string(k.shape()) + " and V " + shape_to_string(v.shape()) + " do not match");
  if (g.kv_heads <= 0 || g.q_heads % g.kv_heads != 0)
    c.fail("Attention needs q_num_heads a multiple of kv_num_heads, got " + std::to_string(g.q_heads) + " and " +
           std::to_string(g.kv_heads));
  if (c.has_input(4) != c.has_input(5)) c.fail("Attention needs past_key and past_value together");
  if (c.has_input(4)) {
    const std::vector<int64_t> want_k{g.batch, g.kv_heads, c.input(4).rank() == 4 ? c.input(4).shape()[2] : -1, g.dq};
    if (c.input(4).dtype() != DType::F32 || c.input(4).shape() != want_k || c.input(5).dtype() != DType::F32 ||
        c.input(5).shape() != std::vector<int64_t>{g.batch, g.kv_heads, want_k[2], g.dv})
      c.fail("Attention past_key " + shape_to_string(c.input(4).shape()) + " and past_value " +
             shape_to_string(c.input(5).shape()) + " do not match K and V");
    g.past = want_k[2];
  }
  if (c.has_input(6)) c.fail("Attention with nonpad_kv_seqlen is not supported");
  if (c.wants_output(3)) c.fail("Attention's qk_matmul_output is not supported");
  return g;
}

// Past and new keys (or values) of `width` per head as [batch, kv_heads, total, width].
Tensor concat_cache(const OpContext& c, const Geometry& g, size_t past_input, const Tensor& now, int64_t width) {
  Tensor all(DType::F32, {g.batch, g.kv_heads, g.total(), width});
  float* dst = all.mutable_data<float>();
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t h = 0; h < g.kv_heads; ++h) {
      float* head = dst + (b * g.kv_heads + h) * g.total() * width;
      if (g.past > 0) {
        const float* past = c.input(past_input).data<float>() + (b * g.kv_heads + h) * g.past * width;
        std::copy(past, past + g.past * width, head);
      }
      for (int64_t t = 0; t < g.keys; ++t) {
        const float* row = g.three_d ? now.data<float>() + (b * g.keys + t) * g.kv_heads * width + h * width
                                     : now.data<float>() + ((b * g.kv_heads + h) * g.keys + t) * width;
        std::copy(row, row + width, head + (g.past + t) * width);
      }
    }
  return all;
}

// The additive mask of every (batch, query head) the mask distinguishes, [seq x total] each.
class MaskBias {
 public:
  MaskBias(const OpContext& c, const Geometry& g) : g_(g) {
    causal_ = c.attr_int("is_causal", 0) != 0;
    if (!c.has_input(3)) return;
    mask_ = &c.input(3);
    const auto& d = mask_->shape();
    if (mask_->dtype() != DType::Bool && mask_->dtype() != DType::F32)
      c.fail("Attention attn_mask must be bool or f32, got " + std::string(dtype_name(mask_->dtype())));
    if (d.size() < 2 || d.size() > 4 || d.back() > g.total())
      c.fail("Attention attn_mask of shape " + shape_to_string(d) + " does not broadcast to [" +
             std::to_string(g.batch) + ", " + std::to_string(g.q_heads) + ", " + std::to_string(g.seq) + ", " +
             std::to_string(g.total()) + "]");
    const int64_t want[4] = {g.batch, g.q_heads, g.seq, g.total()};
    for (size_t i = 0; i < d.size(); ++i) {
      const size_t axis = 4 - d.size() + i;
      if (axis < 3 && d[i] != 1 && d[i] != want[axis])
        c.fail("Attention attn_mask of shape " + shape_to_string(d) + " does not broadcast over axis " +
               std::to_string(axis));
    }
    mask_batch_ = d.size() >= 4 ? d[0] : 1;
    mask_heads_ = d.size() >= 3 ? d[d.size() - 3] : 1;
    mask_rows_ = d[d.size() - 2];
    mask_cols_ = d.back();
  }

  bool any() const { return mask_ || causal_; }

  const float* at(int64_t b, int64_t h) {
    const int64_t mb = mask_batch_ == 1 ? 0 : b, mh = mask_heads_ == 1 ? 0 : h;
    auto [it, fresh] = cache_.try_emplace({mb, mh});
    if (!fresh) return it->second.data();
    const int64_t T = g_.total();
    std::vector<float>& bias = it->second;
    bias.assign(static_cast<size_t>(g_.seq * T), 0.0f);
    constexpr float kMasked = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < g_.seq; ++i)
      for (int64_t t = 0; t < T; ++t) {
        float& out = bias[static_cast<size_t>(i * T + t)];
        if (mask_) {
          const int64_t row = mask_rows_ == 1 ? 0 : i;
          const int64_t index = ((mb * mask_heads_ + mh) * mask_rows_ + row) * mask_cols_ + t;
          if (t >= mask_cols_)
            out = kMasked;
          else if (mask_->dtype() == DType::Bool)
            out = mask_->data<bool>()[index] ? 0.0f : kMasked;
          else
            out = mask_->data<float>()[index];
        }
        if (causal_ && t > i + g_.past) out = kMasked;
      }
    return bias.data();
  }

 private:
  const Geometry& g_;
  const Tensor* mask_ = nullptr;
  bool causal_ = false;
  int64_t mask_batch_ = 1, mask_heads_ = 1, mask_rows_ = 1, mask_cols_ = 0;
  std::map<std::pair<int64_t, int64_t>, std::vector<float>> cache_;
};

void attention_op(OpContext& c) {
  const Geometry g = check_geometry(c);
  const Tensor keys = concat_cache(c, g, 4, c.input(1), g.dq);
  const Tensor values = concat_cache(c, g, 5, c.input(2), g.dv);
  MaskBias mask(c, g);
  const float* q = c.input(0).data<float>();
  const int64_t T = g.total();
  const HeadOperand qh = g.three_d ? HeadOperand{q, g.seq * g.q_heads * g.dq, g.dq, g.q_heads * g.dq, g.seq, g.dq}
                                   : HeadOperand{q, g.q_heads * g.seq * g.dq, g.seq * g.dq, g.dq, g.seq, g.dq};
  const HeadOperand kh{keys.data<float>(), g.kv_heads * T * g.dq, T * g.dq, g.dq, T, g.dq};
  const HeadOperand vh{values.data<float>(), g.kv_heads * T * g.dv, T * g.dv, g.dv, T, g.dv};
  const float scale =
      c.attr("scale") ? c.attr_float("scale", 1.0f) : static_cast<float>(1.0 / std::sqrt(static_cast<double>(g.dq)));
  AttentionParams p{g.batch, g.q_heads, g.kv_heads, scale, c.attr_float("softcap", 0.0f), nullptr};
  if (mask.any()) p.mask = [&](int64_t b, int64_t h) { return mask.at(b, h); };
  Tensor out(DType::F32, g.three_d ? std::vector<int64_t>{g.batch, g.seq, g.q_heads * g.dv}
                                   : std::vector<int64_t>{g.batch, g.q_heads, g.seq, g.dv});
  if (g.three_d)
    attend(p, qh, kh, vh, out.mutable_data<float>(), g.seq * g.q_heads * g.dv, g.dv, g.q_heads * g.dv);
  else
    attend(p, qh, kh, vh, out.mutable_data<float>(), g.q_heads * g.seq * g.dv, g.seq * g.dv, g.dv);
  c.output(0) = std::move(out);
  if (c.wants_output(1)) c.output(1) = keys;
  if (c.wants_output(2)) c.output(2) = values;
}

}  // namespace

void register_attention(KernelRegistry& r) { r.add("", "Attention", attention_op); }

}  // namespace slmopt::runtime
