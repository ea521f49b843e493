// LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM: pre-norm blocks of
// RMSNorm, rotary grouped-query attention and a SwiGLU feed-forward. They differ
// only in settings: Qwen2's q/k/v biases, Mistral's sliding window, Llama 3's
// RoPE frequency scaling.
#include <cmath>
#include <numbers>

#include "core/error.hpp"
#include "llm/decoder_parts.hpp"
#include "llm/llama_graph.hpp"

namespace slmopt::llm {
namespace {

// Rotary frequencies theta^(-2i/d), rescaled as the config's rope_scaling says
// (Hugging Face's _compute_llama3_parameters and linear scaling).
std::vector<float> rope_inverse_frequencies(const ArchConfig& c, const std::string& file) {
  const int64_t half = c.head_dim / 2;
  std::vector<float> inv(half);
  for (int64_t i = 0; i < half; ++i)
    inv[i] = static_cast<float>(1.0 / std::pow(c.rope_theta, static_cast<double>(2 * i) / static_cast<double>(c.head_dim)));
  if (!c.rope_scaling || c.rope_scaling->type == "default") return inv;
  const RopeScaling& s = *c.rope_scaling;
  if (s.type == "linear") {
    for (auto& f : inv) f = static_cast<float>(f / s.factor);
    return inv;
  }
  if (s.type != "llama3")
    throw_bad_input("rope_scaling type '" + s.type + "' is not supported (supported: default, linear, llama3)", file);
  if (s.original_max_position_embeddings <= 0 || s.high_freq_factor <= s.low_freq_factor)
    throw_bad_input("llama3 rope_scaling needs original_max_position_embeddings and high_freq_factor > low_freq_factor",
                    file);
  const double old_context = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / s.low_freq_factor;
  const double high_freq_wavelen = old_context / s.high_freq_factor;
  for (auto& f : inv) {
    const double wavelen = 2 * std::numbers::pi / f;
    if (wavelen < high_freq_wavelen) continue;
    if (wavelen > low_freq_wavelen) {
      f = static_cast<float>(f / s.factor);
      continue;
    }
    const double smooth = (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    f = static_cast<float>((1 - smooth) * f / s.factor + smooth * f);
  }
  return inv;
}

struct Rotary {
  std::string cos, sin;  // [sequence, 1, head_dim]
};

Rotary rotary_tables(GraphBuilder& b, const ArchConfig& c, const Positions& p, const std::string& file) {
  const auto inv = rope_inverse_frequencies(c, file);
  const std::string freqs = b.initializer("rotary/inv_freq", Tensor::from_values(DType::F32, {c.head_dim / 2}, inv));
  const std::string pos = b.add("rotary/position", "Cast", {p.qpos_column},
                                {Attribute::integer("to", 1)});
  const std::string angles = b.add("rotary/angles", "Mul", {pos, freqs});
  const std::string both = b.add("rotary/both_halves", "Concat", {angles, angles}, {Attribute::integer("axis", -1)});
  Rotary r;
  r.cos = b.add("rotary/cos_heads", "Unsqueeze", {b.add("rotary/cos", "Cos", {both}), b.ints({1})});
  r.sin = b.add("rotary/sin_heads", "Unsqueeze", {b.add("rotary/sin", "Sin", {both}), b.ints({1})});
  return r;
}

// x * cos + rotate_half(x) * sin, with rotate_half(x) = [-x2, x1] (the halves of head_dim).
std::string rotate(GraphBuilder& b, const std::string& name, const std::string& x, const Rotary& r) {
  const auto halves = b.add_outputs(name + "/halves", "Split", {x}, 2, {Attribute::integer("axis", -1)});
  const std::string negated = b.add(name + "/negate", "Neg", {halves[1]});
  const std::string turned = b.add(name + "/rotate_half", "Concat", {negated, halves[0]}, {Attribute::integer("axis", -1)});
  return b.add(name + "/rotated", "Add",
               {b.add(name + "/times_cos", "Mul", {x, r.cos}), b.add(name + "/times_sin", "Mul", {turned, r.sin})});
}

void check_supported(const ArchConfig& c, const std::string& file) {
  if (c.hidden_act != "silu")
    throw_bad_input("hidden_act '" + c.hidden_act + "' is not supported for " + c.architecture + " (supported: silu)", file);
  if (c.head_dim % 2 != 0) throw_bad_input("head_dim " + std::to_string(c.head_dim) + " must be even for rotary positions", file);
}

}  // namespace

Model build_llama_graph(const ArchConfig& c, WeightTable& w) {
  check_supported(c, w.file());
  Model m = new_decoder_model(c);
  GraphBuilder b(m.graph);
  const int64_t d = c.hidden_size, f = c.intermediate_size, attn_width = c.num_heads * c.head_dim,
                kv_width = c.num_kv_heads * c.head_dim;
  // Qwen2 has q/k/v biases and none on o_proj; Llama's attention_bias puts one on all four.
  const bool qkv_bias = c.attention_bias || c.family == ArchFamily::Qwen2;
  const bool o_bias = c.attention_bias && c.family != ArchFamily::Qwen2;

  auto weight = [&](const std::string& name, std::vector<int64_t> shape) {
    return b.initializer(name, w.take(name, shape));
  };
  auto optional_bias = [&](bool present, const std::string& name, int64_t n) {
    return present ? weight(name, {n}) : std::string();
  };

  const std::string embed = weight("model.embed_tokens.weight", {c.vocab_size, d});
  const Positions p = decoder_positions(b, c);
  const Rotary rotary = rotary_tables(b, c, p, w.file());
  std::string tokens = b.add("model.embed_tokens", "Gather", {embed, "input_ids"});
  if (m.graph.find_initializer(embed)->tensor.dtype() != DType::F32)  // a bf16/f16 table gives bf16/f16 rows
    tokens = b.add("model.embed_tokens/to_float", "Cast", {tokens}, {Attribute::integer("to", 1)});
  std::string x = b.add("model.embed_tokens/rows", "Reshape", {tokens, b.ints({-1, d})});

  const AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string layer = "model.layers." + std::to_string(i);
    const std::string attn = layer + ".self_attn";
    const std::string h = rms_norm(b, layer + ".input_layernorm", x, weight(layer + ".input_layernorm.weight", {d}), c.norm_eps);
    auto project = [&](const std::string& proj, int64_t out, int64_t in, const std::string& input, bool bias) {
      const std::string name = attn + "." + proj;
      return linear(b, name, input, weight(name + ".weight", {out, in}), optional_bias(bias, name + ".bias", out));
    };
    const std::string q = project("q_proj", attn_width, d, h, qkv_bias);
    const std::string k = project("k_proj", kv_width, d, h, qkv_bias);
    const std::string v = project("v_proj", kv_width, d, h, qkv_bias);
    const std::string q4 = rotate(b, attn + "/q_rotary", split_heads(b, attn + "/q", q, p, c.num_heads, c.head_dim), rotary);
    const std::string k4 = rotate(b, attn + "/k_rotary", split_heads(b, attn + "/k", k, p, c.num_kv_heads, c.head_dim), rotary);
    const std::string v4 = split_heads(b, attn + "/v", v, p, c.num_kv_heads, c.head_dim);
    const std::string context = cached_attention(b, attn, i, q4, k4, v4, p, shape);
    x = b.add(layer + "/attention_residual", "Add", {x, project("o_proj", d, attn_width, context, o_bias)});

    const std::string mlp = layer + ".mlp";
    const std::string h2 =
        rms_norm(b, layer + ".post_attention_layernorm", x, weight(layer + ".post_attention_layernorm.weight", {d}), c.norm_eps);
    auto mlp_proj = [&](const std::string& proj, int64_t out, int64_t in, const std::string& input) {
      const std::string name = mlp + "." + proj;
      return linear(b, name, input, weight(name + ".weight", {out, in}), optional_bias(c.mlp_bias, name + ".bias", out));
    };
    const std::string gate = mlp_proj("gate_proj", f, d, h2);
    const std::string up = mlp_proj("up_proj", f, d, h2);
    const std::string silu = b.add(mlp + "/silu", "Mul", {gate, b.add(mlp + "/sigmoid", "Sigmoid", {gate})});
    const std::string gated = b.add(mlp + "/gated", "Mul", {silu, up});
    x = b.add(layer + "/mlp_residual", "Add", {x, mlp_proj("down_proj", d, f, gated)});
  }
  x = rms_norm(b, "model.norm", x, weight("model.norm.weight", {d}), c.norm_eps);
  std::string head = embed;
  if (!c.tie_word_embeddings)
    head = weight("lm_head.weight", {c.vocab_size, d});
  else
    w.ignore("lm_head.weight");  // some tied checkpoints store the copy too
  for (int64_t i = 0; i < c.num_layers; ++i) w.ignore("model.layers." + std::to_string(i) + ".self_attn.rotary_emb.inv_freq");
  w.expect_all_taken();
  logits_output(b, x, head, p, c.vocab_size);
  return m;
}

}  // namespace slmopt::llm
