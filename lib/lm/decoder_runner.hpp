// Runs a decoder graph (the interface of formats/llm/decoder_graph.hpp) token
// by token: it keeps the key/value cache between calls, so each new token costs
// one position of work, not the whole context again.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/ir.hpp"
#include "runtime/session.hpp"

namespace slmopt::lm {

class DecoderRunner {
 public:
  // Throws Error(BadInput) when the model lacks the decoder interface.
  explicit DecoderRunner(const Model& model);

  // Appends `tokens` to the context and returns their next-token logits,
  // [tokens.size(), vocab] row-major. Throws when the context would exceed `context_limit`.
  std::vector<float> feed(std::span<const int64_t> tokens);
  void reset();

  int64_t position() const { return position_; }
  int64_t vocab() const { return vocab_; }
  int64_t layers() const { return static_cast<int64_t>(past_.size()); }
  int64_t kv_heads(size_t layer) const { return kv_heads_.at(layer); }
  int64_t head_dim() const { return head_dim_; }
  // Longest context the model was trained for (0: unknown, no limit).
  void set_context_limit(int64_t limit) { context_limit_ = limit; }
  // Bytes the cache holds now.
  uint64_t cache_bytes() const;
  const runtime::RunStats& last_stats() const { return stats_; }

 private:
  runtime::Session session_;
  std::vector<std::pair<Tensor, Tensor>> past_;  // per layer: keys, values
  std::vector<int64_t> kv_heads_;  // per layer
  int64_t head_dim_ = 0, vocab_ = 0, position_ = 0, context_limit_ = 0;
  runtime::RunStats stats_;
};

}  // namespace slmopt::lm
