#include "llm/decoder_parts.hpp"

#include <cmath>
#include <limits>

#include "llm/decoder_graph.hpp"

namespace slmopt::llm {
namespace {

Attribute int_attr(const char* name, int64_t v) { return Attribute::integer(name, v); }
Attribute ints_attr(const char* name, std::vector<int64_t> v) { return Attribute::integers(name, std::move(v)); }

ValueInfo tensor_info(std::string name, DType dtype, std::vector<Dim> dims) {
  ValueInfo v;
  v.name = std::move(name);
  v.dtype = dtype;
  v.shape = std::move(dims);
  return v;
}

Dim sym(const char* name) { return Dim{-1, name, {}}; }
Dim fixed(int64_t v) { return Dim{v, {}, {}}; }

}  // namespace

Model new_decoder_model(const ArchConfig& c) {
  Model m;
  m.opsets = {{"", 17}};
  m.producer_name = "slmopt";
  m.graph.name = c.architecture;
  Graph& g = m.graph;
  g.inputs.push_back(tensor_info("input_ids", DType::I64, {sym("batch"), sym("sequence")}));
  g.outputs.push_back(tensor_info("logits", DType::F32, {sym("batch"), sym("sequence"), fixed(c.vocab_size)}));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    for (const auto& name : {past_key_name(i), past_value_name(i)})
      g.inputs.push_back(
          tensor_info(name, DType::F32, {sym("batch"), fixed(c.num_kv_heads), sym("past_sequence"), fixed(c.head_dim)}));
    for (const auto& name : {present_key_name(i), present_value_name(i)})
      g.outputs.push_back(tensor_info(name, DType::F32,
                                      {sym("batch"), fixed(c.num_kv_heads), sym("total_sequence"), fixed(c.head_dim)}));
  }
  return m;
}

Positions decoder_positions(GraphBuilder& b, const ArchConfig& c) {
  Positions p;
  p.ids_shape = b.add("positions/ids_shape", "Shape", {"input_ids"});
  const std::string seq = b.add("positions/sequence", "Gather", {p.ids_shape, b.int_scalar(1)});
  const std::string past_shape = b.add("positions/past_shape", "Shape", {past_key_name(0)});
  const std::string past = b.add("positions/past", "Gather", {past_shape, b.int_scalar(2)});
  const std::string total = b.add("positions/total", "Add", {past, seq});
  const std::string step = b.int_scalar(1);
  p.qpos = b.add("positions/query", "Range", {past, total, step});
  const std::string kpos = b.add("positions/key", "Range", {b.int_scalar(0), total, step});
  const std::string key_row = b.add("positions/key_row", "Unsqueeze", {kpos, b.ints({0})});
  const std::string query_col = p.qpos_column = b.add("positions/query_col", "Unsqueeze", {p.qpos, b.ints({1})});
  p.mask = b.add("positions/causal", "LessOrEqual", {key_row, query_col});
  if (c.sliding_window && *c.sliding_window < c.max_position_embeddings) {
    const std::string oldest =
        b.add("positions/window_start", "Sub", {query_col, b.int_scalar(*c.sliding_window)});
    const std::string recent = b.add("positions/in_window", "Greater", {key_row, oldest});
    p.mask = b.add("positions/mask", "And", {p.mask, recent});
  }
  return p;
}

std::string rms_norm(GraphBuilder& b, const std::string& name, const std::string& x, const std::string& weight,
                     double eps) {
  const std::string sq = b.add(name + "/square", "Mul", {x, x});
  const std::string mean = b.add(name + "/mean", "ReduceMean", {sq}, {ints_attr("axes", {-1}), int_attr("keepdims", 1)});
  const std::string var = b.add(name + "/add_eps", "Add", {mean, b.float_scalar(static_cast<float>(eps))});
  const std::string inv = b.add(name + "/rsqrt", "Reciprocal", {b.add(name + "/sqrt", "Sqrt", {var})});
  return b.add(name + "/scale", "Mul", {b.add(name + "/normalize", "Mul", {x, inv}), weight});
}

std::string linear(GraphBuilder& b, const std::string& name, const std::string& x, const std::string& weight,
                   const std::string& bias) {
  std::vector<std::string> inputs{x, weight};
  if (!bias.empty()) inputs.push_back(bias);
  return b.add(name, "Gemm", inputs, {int_attr("transB", 1)});
}

std::string split_heads(GraphBuilder& b, const std::string& name, const std::string& x2d, const Positions& p,
                        int64_t heads, int64_t head_dim) {
  const std::string shape =
      b.add(name + "/heads_shape", "Concat", {p.ids_shape, b.ints({heads, head_dim})}, {int_attr("axis", 0)});
  return b.add(name + "/split_heads", "Reshape", {x2d, shape});
}

std::string cached_attention(GraphBuilder& b, const std::string& name, int64_t layer, const std::string& q,
                             const std::string& k, const std::string& v, const Positions& p, const AttentionShape& s) {
  const int64_t group = s.heads / s.kv_heads;
  const std::vector<int64_t> to_heads_first{0, 2, 1, 3};
  // Query heads h = kv * group + g share key/value head kv (Hugging Face's repeat_kv):
  // [B, kv_heads, group, S, hd] meets the cache [B, kv_heads, 1, T, hd] by broadcasting,
  // so keys and values are never copied per query head.
  const std::string qt = b.add(name + "/q_heads_first", "Transpose", {q}, {ints_attr("perm", to_heads_first)});
  const std::string q5 = b.add(name + "/q_groups", "Reshape",
                               {qt, b.ints({0, s.kv_heads, group, -1, s.head_dim})});
  const std::string kt = b.add(name + "/k_heads_first", "Transpose", {k}, {ints_attr("perm", to_heads_first)});
  const std::string vt = b.add(name + "/v_heads_first", "Transpose", {v}, {ints_attr("perm", to_heads_first)});
  const std::string keys = b.add_to(present_key_name(layer), name + "/append_key", "Concat",
                                    {past_key_name(layer), kt}, {int_attr("axis", 2)});
  const std::string values = b.add_to(present_value_name(layer), name + "/append_value", "Concat",
                                      {past_value_name(layer), vt}, {int_attr("axis", 2)});
  const std::string axis2 = b.ints({2});
  const std::string k5 = b.add(name + "/k_groups", "Unsqueeze", {keys, axis2});
  const std::string v5 = b.add(name + "/v_groups", "Unsqueeze", {values, axis2});
  const std::string k5t = b.add(name + "/k_transposed", "Transpose", {k5}, {ints_attr("perm", {0, 1, 2, 4, 3})});
  const std::string scores = b.add(name + "/scores", "MatMul", {q5, k5t});
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.head_dim)));
  const std::string scaled = b.add(name + "/scale", "Mul", {scores, b.float_scalar(scale)});
  const std::string masked = b.add(name + "/mask", "Where",
                                   {p.mask, scaled,
                                    b.float_scalar(-std::numeric_limits<float>::infinity())});
  const std::string probs = b.add(name + "/softmax", "Softmax", {masked}, {int_attr("axis", -1)});
  const std::string o5 = b.add(name + "/weighted", "MatMul", {probs, v5});
  const std::string o4 = b.add(name + "/merge_groups", "Reshape",
                               {o5, b.ints({0, s.heads, -1, s.head_dim})});
  const std::string o = b.add(name + "/sequence_first", "Transpose", {o4}, {ints_attr("perm", to_heads_first)});
  return b.add(name + "/merge_heads", "Reshape", {o, b.ints({-1, s.heads * s.head_dim})});
}

void logits_output(GraphBuilder& b, const std::string& x, const std::string& head, const Positions& p, int64_t vocab) {
  const std::string rows = linear(b, "lm_head", x, head);
  const std::string shape =
      b.add("lm_head/logits_shape", "Concat", {p.ids_shape, b.ints({vocab})}, {int_attr("axis", 0)});
  b.add_to("logits", "lm_head/logits", "Reshape", {rows, shape});
}

}  // namespace slmopt::llm
