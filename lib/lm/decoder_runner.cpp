#include "lm/decoder_runner.hpp"

#include <cstring>

#include "core/error.hpp"

namespace slmopt::lm {
namespace {

std::string layer_value(const char* prefix, size_t layer, const char* kind) {
  return std::string(prefix) + std::to_string(layer) + kind;
}

int64_t fixed_dim(const ValueInfo& v, size_t axis) {
  if (!v.shape || v.shape->size() != 4 || !(*v.shape)[axis].is_fixed())
    throw_bad_input("decoder input '" + v.name + "' needs a fixed dimension " + std::to_string(axis) +
                    " of a rank-4 [batch, kv_heads, past, head_dim] shape");
  return (*v.shape)[axis].value;
}

}  // namespace

DecoderRunner::DecoderRunner(const Model& model) : session_(model) {
  const Graph& g = model.graph;
  auto find_input = [&](const std::string& name) -> const ValueInfo* {
    for (const auto& v : g.inputs)
      if (v.name == name) return &v;
    return nullptr;
  };
  if (!find_input("input_ids")) throw_bad_input("the model is not a decoder: it has no input 'input_ids'");
  const ValueInfo* logits = nullptr;
  for (const auto& v : g.outputs)
    if (v.name == "logits") logits = &v;
  if (!logits || !logits->shape || logits->shape->size() != 3 || !logits->shape->back().is_fixed())
    throw_bad_input("the model is not a decoder: it has no output 'logits' of shape [batch, sequence, vocab]");
  vocab_ = logits->shape->back().value;
  for (size_t i = 0;; ++i) {
    const ValueInfo* key = find_input(layer_value("past_key_values.", i, ".key"));
    if (!key) break;
    if (!find_input(layer_value("past_key_values.", i, ".value")))
      throw_bad_input("decoder input 'past_key_values." + std::to_string(i) + ".value' is missing");
    kv_heads_.push_back(fixed_dim(*key, 1));  // per layer: pruning may leave layers different head counts
    head_dim_ = fixed_dim(*key, 3);
    past_.emplace_back();
  }
  if (past_.empty()) throw_bad_input("the model is not a decoder: it has no input 'past_key_values.0.key'");
  reset();
}

void DecoderRunner::reset() {
  for (size_t i = 0; i < past_.size(); ++i) {
    past_[i].first = Tensor(DType::F32, {1, kv_heads_[i], 0, head_dim_});
    past_[i].second = Tensor(DType::F32, {1, kv_heads_[i], 0, head_dim_});
  }
  position_ = 0;
}

uint64_t DecoderRunner::cache_bytes() const {
  uint64_t n = 0;
  for (const auto& [k, v] : past_) n += k.nbytes() + v.nbytes();
  return n;
}

std::vector<float> DecoderRunner::feed(std::span<const int64_t> tokens) {
  const auto n = static_cast<int64_t>(tokens.size());
  if (n == 0) return {};
  if (context_limit_ > 0 && position_ + n > context_limit_)
    throw_usage("the context would grow to " + std::to_string(position_ + n) + " tokens; the model holds " +
                std::to_string(context_limit_));
  for (int64_t t : tokens)
    if (t < 0 || t >= vocab_)
      throw_usage("token id " + std::to_string(t) + " is outside the vocabulary of " + std::to_string(vocab_));
  std::map<std::string, Tensor> feeds;
  feeds["input_ids"] = Tensor::from_values(DType::I64, {1, n}, std::vector<int64_t>(tokens.begin(), tokens.end()));
  for (size_t i = 0; i < past_.size(); ++i) {
    feeds[layer_value("past_key_values.", i, ".key")] = past_[i].first;
    feeds[layer_value("past_key_values.", i, ".value")] = past_[i].second;
  }
  stats_ = {};
  auto out = session_.run(feeds, &stats_);
  for (size_t i = 0; i < past_.size(); ++i) {
    past_[i].first = out.at(layer_value("present.", i, ".key"));
    past_[i].second = out.at(layer_value("present.", i, ".value"));
  }
  position_ += n;
  const Tensor& logits = out.at("logits");
  if (logits.numel() != n * vocab_) throw_internal("decoder logits have " + std::to_string(logits.numel()) + " values");
  const float* p = logits.data<float>();
  return std::vector<float>(p, p + logits.numel());
}

}  // namespace slmopt::lm
