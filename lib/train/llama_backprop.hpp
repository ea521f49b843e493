// A Llama decoder's forward pass and its gradient, for training the weights
// of a model formats/llm built (quantization-aware distillation, train/distill.hpp).
// The graph is the runtime's; this is the same arithmetic written out so it
// can be differentiated: RMSNorm, rotary grouped-query causal attention,
// SwiGLU, and the (tied or separate) output layer. Tests check its logits
// against the runtime's and its gradient against finite differences.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <string>
#include <vector>

#include "core/ir.hpp"

namespace slmopt::train {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Where each weight sits in LlamaWeights::values; norms are 1 x dim rows,
// projections [out, in] as the checkpoint stores them.
struct LlamaLayout {
  int64_t dim = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0, vocab = 0;
  double eps = 0;
  std::vector<float> inv_freq;  // head_dim / 2 rotary frequencies, scaling applied (the graph's own)
  size_t embed = 0, final_norm = 0;
  int64_t head = -1;  // -1: the output layer is the embedding (tied)
  struct Layer {
    size_t attn_norm, q, k, v, o, ffn_norm, gate, up, down;
  };
  std::vector<Layer> layers;
};

struct LlamaWeights {
  LlamaLayout layout;
  std::vector<std::string> names;  // the model's initializer names
  std::vector<Matrix> values;
};

// The weights of a Llama-family decoder formats/llm built, as f32 (f16 and
// bf16 checkpoints are widened). Error(Usage)
// names what is not supported: another family, biases, a sliding window.
LlamaWeights llama_weights(const Model& model);
// `model` with the named initializers replaced by `w`'s values (f32).
void write_llama_weights(Model& model, const LlamaWeights& w);

// Next-token logits, tokens.size() x vocab.
Matrix llama_logits(const LlamaLayout& layout, const std::vector<Matrix>& w, const std::vector<int64_t>& tokens);

// Mean over positions of KL(teacher || model) for one sequence, where
// teacher_log_probs (tokens.size() x vocab) are the teacher's log-softmax;
// adds scale * d(loss)/d(w) to grads (same shapes as w) and returns the loss.
double llama_distill_step(const LlamaLayout& layout, const std::vector<Matrix>& w, const std::vector<int64_t>& tokens,
                          const Matrix& teacher_log_probs, float scale, std::vector<Matrix>& grads);

// Row-wise log-softmax.
Matrix log_softmax_rows(const Matrix& logits);

}  // namespace slmopt::train
