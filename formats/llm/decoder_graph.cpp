#include "llm/decoder_graph.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/json_integer.hpp"
#include "core/checked.hpp"
#include "core/error.hpp"
#include "llm/gpt2_graph.hpp"
#include "llm/llama_graph.hpp"

namespace slmopt::llm {
namespace {
constexpr const char* kInfoKey = "slmopt.decoder";

// Each size in the config is a dimension of some weight, and each layer has
// weights of its own: a config that claims more than the checkpoint holds is
// refused before any graph (or rotary table) is built for it.
void check_config_fits(const ArchConfig& c, const std::vector<NamedTensor>& tensors, const std::string& file) {
  int64_t largest = 0;
  for (const auto& t : tensors) largest = std::max(largest, t.tensor.numel());
  auto fits = [&](const std::string& what, int64_t value) {
    if (value > largest)
      throw_bad_input("config: " + what + " " + std::to_string(value) + " is larger than the checkpoint's largest tensor (" +
                          std::to_string(largest) + " elements)",
                      file);
  };
  fits("hidden_size", c.hidden_size);
  fits("intermediate_size", c.intermediate_size);
  fits("vocab_size", c.vocab_size);
  fits("head_dim", c.head_dim);
  fits("num_attention_heads x head_dim", checked_mul(c.num_heads, c.head_dim, "num_attention_heads x head_dim"));
  fits("num_key_value_heads x head_dim", checked_mul(c.num_kv_heads, c.head_dim, "num_key_value_heads x head_dim"));
  if (c.num_layers > static_cast<int64_t>(tensors.size()))
    throw_bad_input("config: " + std::to_string(c.num_layers) + " layers, but the checkpoint holds only " +
                        std::to_string(tensors.size()) + " tensors",
                    file);
}

}  // namespace

Model build_decoder(const ArchConfig& config, std::vector<NamedTensor> tensors, const std::string& file) {
  check_config_fits(config, tensors, file);
  WeightTable weights(std::move(tensors), file);
  Model m;
  switch (config.family) {
    case ArchFamily::Llama:
    case ArchFamily::Mistral:
    case ArchFamily::Qwen2: m = build_llama_graph(config, weights); break;
    case ArchFamily::GPT2: m = build_gpt2_graph(config, weights); break;
  }
  DecoderInfo info;
  info.family = arch_family_name(config.family);
  info.num_layers = config.num_layers;
  info.num_kv_heads = config.num_kv_heads;
  info.head_dim = config.head_dim;
  info.vocab_size = config.vocab_size;
  info.context = config.max_position_embeddings;
  info.rope_theta = config.rope_theta;
  info.norm_eps = config.norm_eps;
  info.bos_token_id = config.bos_token_id.value_or(-1);
  info.eos_token_ids = config.eos_token_ids;
  write_decoder_info(m, info);
  return m;
}

void write_decoder_info(Model& model, const DecoderInfo& info) {
  nlohmann::json j{{"family", info.family},     {"num_layers", info.num_layers}, {"num_kv_heads", info.num_kv_heads},
                   {"head_dim", info.head_dim}, {"vocab_size", info.vocab_size}, {"context", info.context},
                   {"rope_theta", info.rope_theta}, {"norm_eps", info.norm_eps},
                   {"bos_token_id", info.bos_token_id}, {"eos_token_ids", info.eos_token_ids}};
  for (auto& [key, value] : model.metadata)
    if (key == kInfoKey) {
      value = j.dump();
      return;
    }
  model.metadata.emplace_back(kInfoKey, j.dump());
}

std::optional<DecoderInfo> read_decoder_info(const Model& model) {
  for (const auto& [key, value] : model.metadata) {
    if (key != kInfoKey) continue;
    const auto j = nlohmann::json::parse(value, nullptr, false);
    if (!j.is_object()) throw_bad_input("metadata '" + std::string(kInfoKey) + "' is not a JSON object");
    try {
      DecoderInfo info;
      info.family = j.at("family").get<std::string>();
      info.num_layers = json_integer<int64_t>(j.at("num_layers"));
      info.num_kv_heads = json_integer<int64_t>(j.at("num_kv_heads"));
      info.head_dim = json_integer<int64_t>(j.at("head_dim"));
      info.vocab_size = json_integer<int64_t>(j.at("vocab_size"));
      info.context = json_integer<int64_t>(j.at("context"));
      info.rope_theta = j.at("rope_theta").get<double>();
      info.norm_eps = j.at("norm_eps").get<double>();
      info.bos_token_id = json_integer<int64_t>(j.at("bos_token_id"));
      info.eos_token_ids = json_integers<int64_t>(j.at("eos_token_ids"));
      if (info.num_layers <= 0 || info.num_kv_heads <= 0 || info.head_dim <= 0 || info.vocab_size <= 0)
        throw_bad_input("metadata '" + std::string(kInfoKey) + "' has a non-positive size");
      return info;
    } catch (const nlohmann::json::exception& e) {
      throw_bad_input("metadata '" + std::string(kInfoKey) + "': " + e.what());
    }
  }
  return std::nullopt;
}

}  // namespace slmopt::llm
