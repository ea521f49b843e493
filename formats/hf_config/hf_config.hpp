// A Hugging Face `config.json` read into a typed description of a decoder-only
// language model. Field names differ by family (GPT-2 says n_embd where Llama
// says hidden_size); this struct uses one vocabulary for all of them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace slmopt {

enum class ArchFamily { Llama, Mistral, Qwen2, GPT2 };
const char* arch_family_name(ArchFamily family);

struct RopeScaling {
  std::string type;  // "llama3", "linear", "dynamic", "yarn", ...
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;
};

struct ArchConfig {
  ArchFamily family = ArchFamily::Llama;
  std::string model_type;    // as written: "llama", "gpt2", ...
  std::string architecture;  // architectures[0], e.g. "LlamaForCausalLM"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  std::string hidden_act;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (Qwen2 always has them)
  bool mlp_bias = false;
  std::optional<int64_t> sliding_window;
  std::string torch_dtype;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
};

// Throws Error(BadInput) naming the file and field for a missing, mistyped or
// inconsistent value, or an unsupported model_type.
ArchConfig read_hf_config(const std::string& path);
ArchConfig parse_hf_config(const std::string& json_text, const std::string& file);

}  // namespace slmopt
