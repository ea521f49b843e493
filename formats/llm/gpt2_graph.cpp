// GPT2LMHeadModel: learned positions, pre-LayerNorm blocks, one fused q/k/v
// projection, GELU (tanh form) feed-forward, output layer tied to the token
// embedding. GPT-2's Conv1D stores weights [in, out], so its linear layers are
// Gemm without transB (and MatMul-like for the quantizer).
#include <cmath>
#include <numbers>

#include "core/error.hpp"
#include "llm/decoder_parts.hpp"
#include "llm/gpt2_graph.hpp"

namespace slmopt::llm {
namespace {

std::string layer_norm(GraphBuilder& b, const std::string& name, const std::string& x, const std::string& weight,
                       const std::string& bias, double eps) {
  Attribute epsilon;
  epsilon.name = "epsilon";
  epsilon.type = AttrType::Float;
  epsilon.f = static_cast<float>(eps);
  return b.add(name, "LayerNormalization", {x, weight, bias}, {Attribute::integer("axis", -1), epsilon});
}

// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): transformers' gelu_new.
std::string gelu_tanh(GraphBuilder& b, const std::string& name, const std::string& x) {
  const std::string cube = b.add(name + "/cube", "Mul", {b.add(name + "/square", "Mul", {x, x}), x});
  const std::string inner = b.add(name + "/inner", "Add", {x, b.add(name + "/cubic", "Mul", {cube, b.float_scalar(0.044715f)})});
  const float k = static_cast<float>(std::sqrt(2.0 / std::numbers::pi));
  const std::string t = b.add(name + "/tanh", "Tanh", {b.add(name + "/scaled", "Mul", {inner, b.float_scalar(k)})});
  const std::string one_plus = b.add(name + "/one_plus", "Add", {t, b.float_scalar(1.0f)});
  return b.add(name + "/gelu", "Mul", {b.add(name + "/half_x", "Mul", {x, b.float_scalar(0.5f)}), one_plus});
}

std::string conv1d(GraphBuilder& b, const std::string& name, const std::string& x, const std::string& weight,
                   const std::string& bias) {
  return b.add(name, "Gemm", {x, weight, bias});
}

}  // namespace

Model build_gpt2_graph(const ArchConfig& c, WeightTable& w) {
  if (c.hidden_act != "gelu_new" && c.hidden_act != "gelu_pytorch_tanh")
    throw_bad_input("activation_function '" + c.hidden_act + "' is not supported for GPT-2 (supported: gelu_new)", w.file());
  if (!c.tie_word_embeddings) throw_bad_input("GPT-2 with a separate output layer is not supported", w.file());
  // transformers saves GPT2LMHeadModel with "transformer." in front; the original checkpoints without.
  const std::string root = w.has("transformer.wte.weight") ? "transformer." : "";
  Model m = new_decoder_model(c);
  GraphBuilder b(m.graph);
  const int64_t d = c.hidden_size, f = c.intermediate_size;
  auto weight = [&](const std::string& name, std::vector<int64_t> shape) { return b.initializer(name, w.take(name, shape)); };

  const Positions p = decoder_positions(b, c);
  const std::string wte = weight(root + "wte.weight", {c.vocab_size, d});
  const std::string wpe = weight(root + "wpe.weight", {c.max_position_embeddings, d});
  std::string tokens = b.add(root + "wte", "Gather", {wte, "input_ids"});
  std::string positions = b.add(root + "wpe", "Gather", {wpe, p.qpos});
  for (auto* v : {&tokens, &positions})
    if (m.graph.find_initializer(wte)->tensor.dtype() != DType::F32)
      *v = b.add(*v + "/to_float", "Cast", {*v}, {Attribute::integer("to", 1)});
  const std::string embedded = b.add(root + "embeddings", "Add", {tokens, positions});  // [B,S,D] + [S,D]
  std::string x = b.add(root + "embeddings/rows", "Reshape", {embedded, b.ints({-1, d})});

  const AttentionShape shape{c.num_heads, c.num_heads, c.head_dim};
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string layer = root + "h." + std::to_string(i);
    const std::string h = layer_norm(b, layer + ".ln_1", x, weight(layer + ".ln_1.weight", {d}),
                                     weight(layer + ".ln_1.bias", {d}), c.norm_eps);
    const std::string qkv = conv1d(b, layer + ".attn.c_attn", h, weight(layer + ".attn.c_attn.weight", {d, 3 * d}),
                                   weight(layer + ".attn.c_attn.bias", {3 * d}));
    const auto parts = b.add_outputs(layer + ".attn/split_qkv", "Split", {qkv}, 3, {Attribute::integer("axis", 1)});
    const std::string attn = layer + ".attn";
    const std::string q = split_heads(b, attn + "/q", parts[0], p, c.num_heads, c.head_dim);
    const std::string k = split_heads(b, attn + "/k", parts[1], p, c.num_heads, c.head_dim);
    const std::string v = split_heads(b, attn + "/v", parts[2], p, c.num_heads, c.head_dim);
    const std::string context = cached_attention(b, attn, i, q, k, v, p, shape);
    const std::string out = conv1d(b, layer + ".attn.c_proj", context, weight(layer + ".attn.c_proj.weight", {d, d}),
                                   weight(layer + ".attn.c_proj.bias", {d}));
    x = b.add(layer + "/attention_residual", "Add", {x, out});
    const std::string h2 = layer_norm(b, layer + ".ln_2", x, weight(layer + ".ln_2.weight", {d}),
                                      weight(layer + ".ln_2.bias", {d}), c.norm_eps);
    const std::string up = conv1d(b, layer + ".mlp.c_fc", h2, weight(layer + ".mlp.c_fc.weight", {d, f}),
                                  weight(layer + ".mlp.c_fc.bias", {f}));
    const std::string down = conv1d(b, layer + ".mlp.c_proj", gelu_tanh(b, layer + ".mlp.act", up),
                                    weight(layer + ".mlp.c_proj.weight", {f, d}), weight(layer + ".mlp.c_proj.bias", {d}));
    x = b.add(layer + "/mlp_residual", "Add", {x, down});
    // Causal-mask buffers of older checkpoints: the graph builds its own mask.
    w.ignore(layer + ".attn.bias");
    w.ignore(layer + ".attn.masked_bias");
  }
  x = layer_norm(b, root + "ln_f", x, weight(root + "ln_f.weight", {d}), weight(root + "ln_f.bias", {d}), c.norm_eps);
  w.ignore("lm_head.weight");  // tied: a stored copy is the embedding again
  w.expect_all_taken();
  logits_output(b, x, wte, p, c.vocab_size);
  return m;
}

}  // namespace slmopt::llm
