// Pieces every decoder graph shares: its inputs and outputs, token positions
// and the causal mask, normalisation, linear layers and grouped-query attention
// over a key/value cache. Hidden states are 2-D [batch * sequence, width].
#pragma once

#include <string>

#include "hf_config/hf_config.hpp"
#include "llm/graph_builder.hpp"

namespace slmopt::llm {

struct Positions {
  std::string ids_shape;  // int64 [2]: batch, sequence
  std::string qpos;       // int64 [sequence]: absolute positions of the new tokens
  std::string qpos_column;  // the same as [sequence, 1]
  std::string mask;       // bool [sequence, past + sequence]: which keys each query sees
};

// An opset-17 model named after the architecture, with the decoder's inputs and outputs.
Model new_decoder_model(const ArchConfig& config);

// Positions follow the past length; the mask is causal, and also limited to the
// last `sliding_window` keys when the config has one.
Positions decoder_positions(GraphBuilder& b, const ArchConfig& config);

// x * weight / sqrt(mean(x^2) + eps) over the last axis.
std::string rms_norm(GraphBuilder& b, const std::string& name, const std::string& x, const std::string& weight,
                     double eps);
// x @ weight^T (+ bias): weight is [out, in], as checkpoints store it.
std::string linear(GraphBuilder& b, const std::string& name, const std::string& x, const std::string& weight,
                   const std::string& bias = {});

struct AttentionShape {
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
};
// Reshapes 2-D projections to heads: [batch, sequence, heads, head_dim].
std::string split_heads(GraphBuilder& b, const std::string& name, const std::string& x2d, const Positions& p,
                        int64_t heads, int64_t head_dim);
// Softmax attention of q [B, S, heads, hd] over the cache extended by k, v
// [B, S, kv_heads, hd]; writes present.{layer}.key/value; returns [B*S, heads*hd].
std::string cached_attention(GraphBuilder& b, const std::string& name, int64_t layer, const std::string& q,
                             const std::string& k, const std::string& v, const Positions& p, const AttentionShape& s);

// The output layer: logits [batch, sequence, vocab] of the final hidden rows,
// written to the graph output "logits"; `head` is [vocab, width].
void logits_output(GraphBuilder& b, const std::string& x, const std::string& head, const Positions& p, int64_t vocab);

}  // namespace slmopt::llm
