// Scaled dot-product attention over heads, shared by ONNX's Attention
// (opset 23) and ONNX Runtime's com.microsoft Attention and
// MultiHeadAttention: each kernel says where its heads' rows live and what
// it adds to the scores; the loop over batch and heads is here.
#pragma once

#include <cstdint>
#include <functional>

namespace slmopt::runtime {

// Head h of batch entry b: `rows` rows of `width` values, row r at
// base + b * batch_stride + h * head_stride + r * row_stride.
struct HeadOperand {
  const float* base;
  int64_t batch_stride, head_stride, row_stride;
  int64_t rows, width;
  const float* at(int64_t b, int64_t h) const { return base + b * batch_stride + h * head_stride; }
};

struct AttentionParams {
  int64_t batch = 0, q_heads = 0, kv_heads = 0;  // query head h reads key/value head h / (q_heads / kv_heads)
  float scale = 1.0f;
  float softcap = 0.0f;  // > 0: scores become softcap * tanh(scores / softcap) before the mask
  // The additive mask of (b, h) as [q rows x k rows], or null for none.
  std::function<const float*(int64_t b, int64_t h)> mask;
};

// softmax(q k^T * scale (+ mask)) v for every batch entry and query head;
// head h's context row r lands at out + b * out_batch + h * out_head + r * out_row.
void attend(const AttentionParams& p, const HeadOperand& q, const HeadOperand& k, const HeadOperand& v, float* out,
            int64_t out_batch, int64_t out_head, int64_t out_row);

}  // namespace slmopt::runtime
