#include "hf_config/hf_config.hpp"

#include <nlohmann/json.hpp>

#include "common/json_integer.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"

namespace slmopt {
using nlohmann::json;

const char* arch_family_name(ArchFamily family) {
  switch (family) {
    case ArchFamily::Llama: return "llama";
    case ArchFamily::Mistral: return "mistral";
    case ArchFamily::Qwen2: return "qwen2";
    case ArchFamily::GPT2: return "gpt2";
  }
  return "?";
}

namespace {

class Fields {
 public:
  explicit Fields(const json& j) : j_(j) {}

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  int64_t positive_int(const char* key) const {
    auto v = optional_int(key);
    if (!v) throw_bad_input(std::string("missing field '") + key + "'");
    if (*v <= 0) throw_bad_input(std::string("field '") + key + "' must be positive, got " + std::to_string(*v));
    return *v;
  }
  std::optional<int64_t> optional_int(const char* key) const {
    if (!has(key)) return std::nullopt;
    const json& v = j_.at(key);
    if (!v.is_number_integer()) throw_bad_input(std::string("field '") + key + "' must be an integer, got " + v.dump());
    return json_integer<int64_t>(v);
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_number()) throw_bad_input(std::string("field '") + key + "' must be a number, got " + v.dump());
    return v.get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_boolean()) throw_bad_input(std::string("field '") + key + "' must be true or false, got " + v.dump());
    return v.get<bool>();
  }
  std::string string(const char* key, const std::string& fallback = {}) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_string()) throw_bad_input(std::string("field '") + key + "' must be a string, got " + v.dump());
    return v.get<std::string>();
  }

 private:
  const json& j_;
};

std::optional<RopeScaling> parse_rope_scaling(const json& j) {
  if (!j.contains("rope_scaling") || j.at("rope_scaling").is_null()) return std::nullopt;
  const json& r = j.at("rope_scaling");
  if (!r.is_object()) throw_bad_input("field 'rope_scaling' must be an object");
  Fields f(r);
  RopeScaling s;
  s.type = f.has("rope_type") ? f.string("rope_type") : f.string("type");
  if (s.type.empty()) throw_bad_input("field 'rope_scaling' has no 'rope_type'");
  s.factor = f.number("factor", 1.0);
  s.low_freq_factor = f.number("low_freq_factor", 1.0);
  s.high_freq_factor = f.number("high_freq_factor", 4.0);
  s.original_max_position_embeddings = f.optional_int("original_max_position_embeddings").value_or(0);
  if (s.factor <= 0) throw_bad_input("rope_scaling factor must be positive");
  return s;
}

std::vector<int64_t> parse_eos(const json& j) {
  if (!j.contains("eos_token_id") || j.at("eos_token_id").is_null()) return {};
  const json& v = j.at("eos_token_id");
  if (v.is_number_integer()) return {json_integer<int64_t>(v)};
  std::vector<int64_t> ids;
  if (v.is_array())
    for (const auto& x : v) {
      if (!x.is_number_integer()) throw_bad_input("field 'eos_token_id' must hold integers");
      ids.push_back(json_integer<int64_t>(x));
    }
  else
    throw_bad_input("field 'eos_token_id' must be an integer or a list of integers");
  return ids;
}

void parse_llama_like(const Fields& f, const json& j, ArchConfig& c) {
  c.vocab_size = f.positive_int("vocab_size");
  c.hidden_size = f.positive_int("hidden_size");
  c.intermediate_size = f.positive_int("intermediate_size");
  c.num_layers = f.positive_int("num_hidden_layers");
  c.num_heads = f.positive_int("num_attention_heads");
  c.num_kv_heads = f.optional_int("num_key_value_heads").value_or(c.num_heads);
  c.head_dim = f.optional_int("head_dim").value_or(c.hidden_size / c.num_heads);
  c.max_position_embeddings = f.optional_int("max_position_embeddings").value_or(2048);
  c.norm_eps = f.number("rms_norm_eps", 1e-6);
  c.rope_theta = f.number("rope_theta", 10000.0);
  c.rope_scaling = parse_rope_scaling(j);
  c.hidden_act = f.string("hidden_act", "silu");
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  c.attention_bias = c.family == ArchFamily::Qwen2 ? true : f.boolean("attention_bias", false);
  c.mlp_bias = f.boolean("mlp_bias", false);
  if (c.family != ArchFamily::Llama && f.boolean("use_sliding_window", c.family == ArchFamily::Mistral))
    c.sliding_window = f.optional_int("sliding_window");
}

void parse_gpt2(const Fields& f, ArchConfig& c) {
  c.vocab_size = f.positive_int("vocab_size");
  c.hidden_size = f.positive_int("n_embd");
  c.num_layers = f.positive_int("n_layer");
  c.num_heads = f.positive_int("n_head");
  c.num_kv_heads = c.num_heads;
  c.head_dim = c.hidden_size / c.num_heads;
  c.intermediate_size = f.optional_int("n_inner").value_or(4 * c.hidden_size);
  c.max_position_embeddings = f.positive_int("n_positions");
  c.norm_eps = f.number("layer_norm_epsilon", 1e-5);
  c.hidden_act = f.string("activation_function", "gelu_new");
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", true);
  c.attention_bias = true;
  c.mlp_bias = true;
}

}  // namespace

ArchConfig parse_hf_config(const std::string& text, const std::string& file) {
  try {
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) throw_bad_input("config is not a JSON object");
    Fields f(j);
    ArchConfig c;
    c.model_type = f.string("model_type");
    if (j.contains("architectures") && j.at("architectures").is_array() &&
        !j.at("architectures").empty() && j.at("architectures")[0].is_string())
      c.architecture = j.at("architectures")[0].get<std::string>();
    if (c.model_type == "llama") c.family = ArchFamily::Llama;
    else if (c.model_type == "mistral") c.family = ArchFamily::Mistral;
    else if (c.model_type == "qwen2") c.family = ArchFamily::Qwen2;
    else if (c.model_type == "gpt2") c.family = ArchFamily::GPT2;
    else
      throw_bad_input("unsupported model_type '" + c.model_type +
                      "' (supported: llama, mistral, qwen2, gpt2)");
    if (c.family == ArchFamily::GPT2) parse_gpt2(f, c);
    else parse_llama_like(f, j, c);
    c.torch_dtype = f.string("torch_dtype");
    c.bos_token_id = f.optional_int("bos_token_id");
    c.eos_token_ids = parse_eos(j);
    if (c.hidden_size % c.num_heads != 0 && c.family == ArchFamily::GPT2)
      throw_bad_input("hidden size " + std::to_string(c.hidden_size) + " is not divisible by " +
                      std::to_string(c.num_heads) + " heads");
    if (c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0)
      throw_bad_input(std::to_string(c.num_heads) + " attention heads cannot be grouped over " +
                      std::to_string(c.num_kv_heads) + " key/value heads");
    if (c.head_dim <= 0) throw_bad_input("head_dim must be positive");
    return c;
  } catch (const json::exception& e) {  // an integer field that does not fit (json_integer)
    throw_bad_input(std::string("malformed config: ") + e.what(), file);
  } catch (Error& e) {
    e.set_file_if_empty(file);
    throw;
  }
}

ArchConfig read_hf_config(const std::string& path) {
  return parse_hf_config(read_small_file(path, 16u << 20), path);
}

}  // namespace slmopt
