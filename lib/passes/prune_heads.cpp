// Structured pruning of attention heads (`--structured heads`) in the decoder
// graphs formats/llm builds from Llama, Mistral, Qwen2 (grouped-query
// attention) and GPT-2 checkpoints. A key/value head goes together with the
// query heads that share it, so the group ratio stays and every shape agrees:
// the query, key and value projections' outputs (and biases), the output
// projection's inputs, the head counts in the Reshape shapes, and the head
// dimension of the cache inputs and outputs. Llama-style layers keep q/k/v/o
// as Gemm with transB ([out, in] weights); GPT-2 keeps one fused c_attn and a
// c_proj as Gemm without it ([in, out], Conv1D), split in equal thirds. The
// layers are found by the builder's node names, and every piece is checked
// before anything changes; another graph is refused.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "core/error.hpp"
#include "passes/graph_edit.hpp"
#include "passes/layer_weight.hpp"
#include "passes/prune.hpp"
#include "passes/sparsity.hpp"

namespace slmopt::passes {
namespace {

struct AttentionLayer {
  std::string prefix;                        // model.layers.N.self_attn, [transformer.]h.N.attn
  Node *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;  // Gemm, transB (Llama)
  Node* qkv = nullptr;                       // GPT-2: c_attn, q/k/v in thirds of its outputs; o is c_proj
  Node *q_shape = nullptr, *k_shape = nullptr, *v_shape = nullptr;  // Concat(ids shape, {heads, head_dim})
  Node *q_groups = nullptr, *merge_groups = nullptr, *merge_heads = nullptr;  // Reshape, constant shape
  Node *append_key = nullptr, *append_value = nullptr;  // Concat(past input, new): present output
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
};

[[noreturn]] void not_attention(const std::string& prefix, const std::string& why) {
  throw_usage("--structured heads: " + prefix + " is not the attention formats/llm builds (" + why +
              "); heads are pruned in decoders built from Llama, Mistral, Qwen2 or GPT-2 checkpoints");
}

std::vector<int64_t> constant_ints(const Graph& g, const std::string& name) {
  const NamedTensor* t = g.find_initializer(name);
  if (!t || t->tensor.dtype() != DType::I64 || t->tensor.rank() != 1) return {};
  const int64_t* v = t->tensor.data<int64_t>();
  return std::vector<int64_t>(v, v + t->tensor.numel());
}

const Tensor& f32_weight(const Graph& g, const AttentionLayer& a, const Node& n, size_t input) {
  const NamedTensor* t = n.inputs.size() > input ? g.find_initializer(n.inputs[input]) : nullptr;
  if (!t) not_attention(a.prefix, n.name + " has no constant input " + std::to_string(input));
  if (t->tensor.is_quantized() || t->tensor.dtype() != DType::F32)
    throw_usage("--structured heads: '" + t->name + "' is not an f32 weight (prune before quantizing)");
  return t->tensor;
}

ValueInfo* value_info(std::vector<ValueInfo>& list, const std::string& name) {
  for (auto& v : list)
    if (v.name == name) return &v;
  return nullptr;
}

bool has_trans_b(const Node& n) {
  for (const auto& attr : n.attributes)
    if (attr.name == "transB") return attr.i == 1;
  return false;
}

// The projections as Gemm with transB stores them, [out, in], whatever the
// layer's layout: the scores and the compensation read only these.
struct Projections {
  Tensor q, k, v, o;
};

Tensor transposed(const float* w, int64_t rows, int64_t cols, int64_t stride, int64_t first_col) {
  Tensor t(DType::F32, {cols, rows});
  float* out = t.mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[c * rows + r] = w[r * stride + first_col + c];
  return t;
}

Projections projections(const Graph& g, const AttentionLayer& a) {
  if (!a.qkv) return {f32_weight(g, a, *a.q, 1), f32_weight(g, a, *a.k, 1), f32_weight(g, a, *a.v, 1), f32_weight(g, a, *a.o, 1)};
  const Tensor &fused = f32_weight(g, a, *a.qkv, 1), &wo = f32_weight(g, a, *a.o, 1);
  const int64_t d = fused.shape()[0], width = fused.shape()[1], part = width / 3;
  const float* w = fused.data<float>();
  return {transposed(w, d, part, width, 0), transposed(w, d, part, width, part), transposed(w, d, part, width, 2 * part),
          transposed(wo.data<float>(), wo.shape()[0], wo.shape()[1], wo.shape()[1], 0)};
}

// The heads, head dimension, Reshape shapes and cache of the attention under
// a.prefix, which the builder's cached_attention() names alike for every family.
template <class NodeOf>
void check_heads(Graph& g, AttentionLayer& a, NodeOf node) {
  a.q_shape = node("/q/heads_shape", "Concat");
  a.k_shape = node("/k/heads_shape", "Concat");
  a.v_shape = node("/v/heads_shape", "Concat");
  a.q_groups = node("/q_groups", "Reshape");
  a.merge_groups = node("/merge_groups", "Reshape");
  a.merge_heads = node("/merge_heads", "Reshape");
  a.append_key = node("/append_key", "Concat");
  a.append_value = node("/append_value", "Concat");

  const auto qs = constant_ints(g, a.q_shape->inputs.at(1)), ks = constant_ints(g, a.k_shape->inputs.at(1)),
             vs = constant_ints(g, a.v_shape->inputs.at(1));
  if (qs.size() != 2 || ks.size() != 2 || ks != vs || qs[1] != ks[1] || qs[1] <= 0 || ks[0] <= 0 || qs[0] % ks[0] != 0)
    not_attention(a.prefix, "its head shapes are not {heads, head_dim} with heads a multiple of key/value heads");
  a.heads = qs[0];
  a.kv_heads = ks[0];
  a.head_dim = qs[1];
  const int64_t group = a.heads / a.kv_heads, hd = a.head_dim;
  if (constant_ints(g, a.q_groups->inputs.at(1)) != std::vector<int64_t>{0, a.kv_heads, group, -1, hd} ||
      constant_ints(g, a.merge_groups->inputs.at(1)) != std::vector<int64_t>{0, a.heads, -1, hd} ||
      constant_ints(g, a.merge_heads->inputs.at(1)) != std::vector<int64_t>{-1, a.heads * hd})
    not_attention(a.prefix, "its Reshape shapes do not match " + std::to_string(a.heads) + " heads of " + std::to_string(hd));
  for (Node* cat : {a.append_key, a.append_value}) {
    const ValueInfo* past = cat->inputs.empty() ? nullptr : value_info(g.inputs, cat->inputs[0]);
    if (!past || !past->shape || past->shape->size() != 4 || (*past->shape)[1].value != a.kv_heads ||
        cat->outputs.empty() || !value_info(g.outputs, cat->outputs[0]))
      not_attention(a.prefix, cat->name + " does not append to a cache input of " + std::to_string(a.kv_heads) + " heads");
  }
}

// Finds and checks one layer; nullopt when the graph has no layer `index`.
std::optional<AttentionLayer> find_layer(Graph& g, const std::map<std::string, Node*>& by_name, int64_t index) {
  AttentionLayer a;
  const std::string n = std::to_string(index);
  for (const std::string& prefix : {"model.layers." + n + ".self_attn", "transformer.h." + n + ".attn", "h." + n + ".attn"})
    if (by_name.count(prefix + ".q_proj") || by_name.count(prefix + ".c_attn")) a.prefix = prefix;
  if (a.prefix.empty()) return std::nullopt;
  auto node = [&](const std::string& suffix, const char* op) {
    auto it = by_name.find(a.prefix + suffix);
    if (it == by_name.end()) not_attention(a.prefix, "no node " + a.prefix + suffix);
    if (it->second->op_type != op) not_attention(a.prefix, a.prefix + suffix + " is not " + op);
    return it->second;
  };
  const bool fused = by_name.count(a.prefix + ".c_attn") > 0;
  if (fused) {
    a.qkv = node(".c_attn", "Gemm");
    a.o = node(".c_proj", "Gemm");
    const Node* split = node("/split_qkv", "Split");
    if (split->inputs.size() != 1 || split->outputs.size() != 3 || split->inputs[0] != a.qkv->outputs.at(0))
      not_attention(a.prefix, split->name + " does not split c_attn's output in three equal parts");
  } else {
    a.q = node(".q_proj", "Gemm");
    a.k = node(".k_proj", "Gemm");
    a.v = node(".v_proj", "Gemm");
    a.o = node(".o_proj", "Gemm");
  }
  for (const Node* p : {a.q, a.k, a.v, a.o, a.qkv})
    if (p && has_trans_b(*p) == fused)
      not_attention(a.prefix, p->name + (fused ? " is not a Gemm without transB" : " is not a Gemm with transB"));
  check_heads(g, a, node);
  const int64_t width = a.heads * a.head_dim, kv_width = a.kv_heads * a.head_dim;
  if (fused) {
    const Tensor &wqkv = f32_weight(g, a, *a.qkv, 1), &wo = f32_weight(g, a, *a.o, 1);
    if (a.heads != a.kv_heads || wqkv.rank() != 2 || wqkv.shape()[1] != 3 * width || wo.rank() != 2 ||
        wo.shape()[0] != width || (a.qkv->inputs.size() > 2 && f32_weight(g, a, *a.qkv, 2).numel() != 3 * width))
      not_attention(a.prefix, "its projection shapes do not match its heads");
    return a;
  }
  const Tensor &wq = f32_weight(g, a, *a.q, 1), &wk = f32_weight(g, a, *a.k, 1), &wv = f32_weight(g, a, *a.v, 1),
               &wo = f32_weight(g, a, *a.o, 1);
  if (wq.rank() != 2 || wq.shape()[0] != width || wk.rank() != 2 || wk.shape()[0] != kv_width ||
      wv.shape() != wk.shape() || wo.rank() != 2 || wo.shape()[1] != width)
    not_attention(a.prefix, "its projection shapes do not match its heads");
  return a;
}

double squared_norm(const float* v, int64_t n, int64_t stride) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(v[i * stride]) * v[i * stride];
  return s;
}

// One score per key/value group: magnitude sums the squared weights of every
// row and column the group owns; wanda the energy its query heads' context
// feeds into o_proj on the calibration inputs: E||W_o[:, g] x_g||^2 from the
// gram block of the group's columns (about its mean when `centred`: the mean
// part moves into o_proj's bias), or sum_c E[x_c^2] ||W_o[:, c]||^2 without X^T X.
std::vector<double> group_scores(const Projections& w, const AttentionLayer& a, const std::string& method,
                                 const calib::InputStats* s, bool centred) {
  const Tensor &wq = w.q, &wk = w.k, &wv = w.v, &wo = w.o;
  const int64_t d = wq.shape()[1], out = wo.shape()[0], cols = wo.shape()[1], group = a.heads / a.kv_heads,
                hd = a.head_dim, width = group * hd;
  const float* o = wo.data<float>();
  std::vector<double> score(static_cast<size_t>(a.kv_heads), 0.0);
  const std::vector<double> mean = s && centred ? s->mean() : std::vector<double>(static_cast<size_t>(cols), 0.0);
  for (int64_t j = 0; j < a.kv_heads; ++j) {
    double& sj = score[static_cast<size_t>(j)];
    const int64_t c0 = j * width;
    if (method == "wanda" && s->has_gram()) {
      const double n = static_cast<double>(std::max<int64_t>(1, s->count));
      for (int64_t c = c0; c < c0 + width; ++c)
        for (int64_t e = c0; e < c0 + width; ++e) {
          double dot = 0;  // (W_o^T W_o)[c, e]
          for (int64_t r = 0; r < out; ++r) dot += static_cast<double>(o[r * cols + c]) * o[r * cols + e];
          const double moment = s->gram_of(0)[c * cols + e] / n - mean[static_cast<size_t>(c)] * mean[static_cast<size_t>(e)];
          sj += moment * dot;
        }
      continue;
    }
    const std::vector<float> energy = method == "wanda" ? importance_of(*s) : std::vector<float>{};
    for (int64_t c = c0; c < c0 + width; ++c) {
      const double column = squared_norm(o + c, out, cols);
      sj += method == "wanda" ? energy[static_cast<size_t>(c)] * column : column + squared_norm(wq.data<float>() + c * d, d, 1);
    }
    if (method != "wanda")
      for (int64_t r = j * hd; r < (j + 1) * hd; ++r)
        sj += squared_norm(wk.data<float>() + r * d, d, 1) + squared_norm(wv.data<float>() + r * d, d, 1);
  }
  return score;
}

// The output projection's bias gains what the removed heads' context added on
// average, sum over removed inputs c of W_o[:, c] E[x_c] (a bias is added if none).
void compensate_means(Graph& g, const AttentionLayer& a, const Tensor& wo, const std::vector<int64_t>& keep,
                      const calib::InputStats& s) {
  const int64_t out = wo.shape()[0], cols = wo.shape()[1], width = a.heads / a.kv_heads * a.head_dim;
  const std::vector<double> mean = s.mean();
  std::vector<float> shift(static_cast<size_t>(out), 0.0f);
  for (int64_t j = 0; j < a.kv_heads; ++j) {
    if (std::find(keep.begin(), keep.end(), j) != keep.end()) continue;
    for (int64_t c = j * width; c < (j + 1) * width; ++c)
      for (int64_t r = 0; r < out; ++r)
        shift[static_cast<size_t>(r)] += static_cast<float>(wo.data<float>()[r * cols + c] * mean[static_cast<size_t>(c)]);
  }
  Tensor bias(DType::F32, {out});
  if (a.o->inputs.size() > 2 && !a.o->inputs[2].empty()) bias = f32_weight(g, a, *a.o, 2);
  for (int64_t r = 0; r < out; ++r) bias.mutable_data<float>()[r] += shift[static_cast<size_t>(r)];
  if (a.o->inputs.size() > 2 && !a.o->inputs[2].empty()) {
    set_input(g, *a.o, 2, a.prefix + "/pruned_heads/o_proj_bias", bias);
  } else {
    const std::string name = a.o->inputs[1].substr(0, a.o->inputs[1].rfind('.')) + ".bias";
    g.initializers.push_back({g.find_initializer(name) ? name + "_compensation" : name, bias, {}});
    a.o->inputs.resize(3);
    a.o->inputs[2] = g.initializers.back().name;
  }
}

// Columns `cols` of each third of a fused [in, 3 * width] weight (or [3 * width] bias).
Tensor take_thirds(const Tensor& t, const std::vector<int64_t>& q_cols, const std::vector<int64_t>& kv_cols) {
  const int64_t width = t.shape().back() / 3;
  std::vector<int64_t> cols = q_cols;
  for (int64_t part : {1, 2})
    for (int64_t c : kv_cols) cols.push_back(part * width + c);
  if (t.rank() == 2) return take_cols(t, cols);
  Tensor out(DType::F32, {static_cast<int64_t>(cols.size())});
  for (size_t i = 0; i < cols.size(); ++i) out.mutable_data<float>()[i] = t.data<float>()[cols[i]];
  return out;
}

void set_ints(Graph& g, Node& n, const std::string& name, const std::vector<int64_t>& values) {
  set_input(g, n, 1, name, Tensor::from_values<int64_t>(DType::I64, {static_cast<int64_t>(values.size())}, values));
}

void shrink_layer(Graph& g, const AttentionLayer& a, const std::vector<int64_t>& keep, std::set<std::string>& replaced) {
  for (const Node* n : {a.q, a.k, a.v, a.o, a.qkv, a.q_shape, a.k_shape, a.v_shape, a.q_groups, a.merge_groups, a.merge_heads})
    if (n)
      for (size_t i = 1; i < n->inputs.size(); ++i) replaced.insert(n->inputs[i]);
  const int64_t group = a.heads / a.kv_heads, hd = a.head_dim, kv = static_cast<int64_t>(keep.size()), heads = kv * group;
  std::vector<int64_t> q_rows, kv_rows;
  for (int64_t j : keep) {
    for (int64_t r = j * group * hd; r < (j + 1) * group * hd; ++r) q_rows.push_back(r);
    for (int64_t r = j * hd; r < (j + 1) * hd; ++r) kv_rows.push_back(r);
  }
  const std::string p = a.prefix + "/pruned_heads/";
  if (a.qkv) {
    for (size_t i = 1; i < a.qkv->inputs.size(); ++i)
      if (!a.qkv->inputs[i].empty())
        set_input(g, *a.qkv, i, p + a.qkv->inputs[i], take_thirds(f32_weight(g, a, *a.qkv, i), q_rows, kv_rows));
    set_input(g, *a.o, 1, p + a.o->inputs[1], take_rows(f32_weight(g, a, *a.o, 1), q_rows));
  } else {
    for (auto [node, rows] : {std::pair{a.q, &q_rows}, {a.k, &kv_rows}, {a.v, &kv_rows}}) {
      set_input(g, *node, 1, p + node->inputs[1], take_rows(f32_weight(g, a, *node, 1), *rows));
      if (node->inputs.size() > 2 && !node->inputs[2].empty())
        set_input(g, *node, 2, p + node->inputs[2], take_rows(f32_weight(g, a, *node, 2), *rows));
    }
    set_input(g, *a.o, 1, p + a.o->inputs[1], take_cols(f32_weight(g, a, *a.o, 1), q_rows));
  }
  set_ints(g, *a.q_shape, p + "q_heads", {heads, hd});
  set_ints(g, *a.k_shape, p + "kv_heads", {kv, hd});
  a.v_shape->inputs[1] = a.k_shape->inputs[1];
  set_ints(g, *a.q_groups, p + "q_groups", {0, kv, group, -1, hd});
  set_ints(g, *a.merge_groups, p + "merge_groups", {0, heads, -1, hd});
  set_ints(g, *a.merge_heads, p + "merge_heads", {-1, heads * hd});
  for (Node* cat : {a.append_key, a.append_value}) {
    (*value_info(g.inputs, cat->inputs[0])->shape)[1].value = kv;
    ValueInfo* present = value_info(g.outputs, cat->outputs[0]);
    if (present->shape && present->shape->size() == 4) (*present->shape)[1].value = kv;
  }
}

int64_t params_of(const Graph& g, const AttentionLayer& a) {
  int64_t n = 0;
  for (const Node* node : {a.q, a.k, a.v, a.o, a.qkv})
    for (size_t i = 1; node && i < node->inputs.size(); ++i)
      if (const NamedTensor* t = g.find_initializer(node->inputs[i])) n += t->tensor.numel();
  return n;
}

}  // namespace

Model prune_heads(const Model& model, const PruneConfig& config, PruneReport& report) {
  Model out = model;
  Graph& g = out.graph;
  std::map<std::string, Node*> by_name;
  for (Node& n : g.nodes) by_name[n.name] = &n;
  std::vector<AttentionLayer> layers;
  for (int64_t i = 0;; ++i) {
    auto layer = find_layer(g, by_name, i);
    if (!layer) break;
    layers.push_back(*layer);
  }
  if (layers.empty()) {
    if (prune_fused_heads(out, config, report) || prune_exported_heads(out, config, report)) return out;
    throw_usage("--structured heads found no attention layer: neither a decoder built from a Llama, Mistral, Qwen2 or "
                "GPT-2 checkpoint, nor an Attention / MultiHeadAttention node, nor exported attention (MatMul projections, Reshape to "
                "heads, Softmax, output MatMul)");
  }
  std::vector<int64_t> rule_hits(config.rules.rules.size(), 0);
  std::set<std::string> replaced;
  for (const AttentionLayer& a : layers) {
    PrunedGroup row;
    row.producers = a.qkv ? std::vector<std::string>{a.qkv->inputs[1]}
                          : std::vector<std::string>{a.q->inputs[1], a.k->inputs[1], a.v->inputs[1]};
    row.consumers = {a.o->inputs[1]};
    row.channels = row.kept = a.kv_heads;
    const Node& first = a.qkv ? *a.qkv : *a.q;
    const double fraction = structured_fraction(config, first.inputs[1], first.name, first.op_type, "heads", row, rule_hits);
    row.params_before = row.params_after = params_of(g, a);
    const int64_t remove = std::min(a.kv_heads - 1, zeros_before(fraction, a.kv_heads));
    if (remove > 0) {
      const Projections w = projections(g, a);
      const calib::InputStats* s =
          row.method == "wanda" ? &wanda_stats(config.stats, a.o->inputs[1], w.o.shape()[1]) : nullptr;
      const bool centred = s && config.compensate_means && !s->sum.empty();
      const std::vector<double> score = group_scores(w, a, row.method, s, centred);
      const std::vector<int64_t> keep = keep_highest(score, remove);
      if (centred) {
        compensate_means(g, a, w.o, keep, *s);
        row.compensated = 1;
      }
      shrink_layer(g, a, keep, replaced);
      row.kept = static_cast<int64_t>(keep.size());
      row.params_after = params_of(g, a);
    }
    report.groups.push_back(row);
  }
  finish_heads(g, replaced, config, rule_hits, report);
  return out;
}

double rows_energy(const Tensor& w, const std::vector<int64_t>& rows, const std::vector<float>* energy) {
  const int64_t out = w.shape()[1];
  double sum = 0;
  for (int64_t r : rows) {
    double row = 0;
    for (int64_t j = 0; j < out; ++j)
      row += static_cast<double>(w.data<float>()[r * out + j]) * w.data<float>()[r * out + j];
    sum += energy ? (*energy)[static_cast<size_t>(r)] * row : row;
  }
  return sum;
}

double columns_energy(const Tensor& w, const std::vector<int64_t>& cols, int64_t offset) {
  const int64_t in = w.shape()[0], width = w.shape()[1];
  double sum = 0;
  for (int64_t c : cols)
    for (int64_t r = 0; r < in; ++r)
      sum += static_cast<double>(w.data<float>()[r * width + offset + c]) * w.data<float>()[r * width + offset + c];
  return sum;
}

void finish_heads(Graph& g, const std::set<std::string>& replaced, const PruneConfig& config,
                  const std::vector<int64_t>& rule_hits, PruneReport& report) {
  drop_unread(g, replaced);
  for (size_t i = 0; i < rule_hits.size(); ++i)
    if (rule_hits[i] == 0) report.warnings.push_back(config.rules.rules[i].label + " matched no attention layer");
}

}  // namespace slmopt::passes
