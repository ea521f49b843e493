// Attention heads of the fused nodes ONNX Runtime's transformer optimizer
// writes. com.microsoft Attention holds one packed projection (weights
// [in, q + k + v], optional bias); MultiHeadAttention reads q, k and v from
// three MatMuls (each maybe + Add bias) and may hold their biases packed in
// its own bias input. Either way `num_heads` heads' contexts go to a MatMul
// behind the node. Removing a head takes its columns out of the projections
// (each section of a packed one) and biases, its rows out of the output
// MatMul's weight, and lowers `num_heads` (and `qkv_hidden_sizes` when
// stated). Every piece is checked before anything changes.
#include <algorithm>
#include <map>
#include <set>

#include "core/error.hpp"
#include "passes/graph_edit.hpp"
#include "passes/layer_weight.hpp"
#include "passes/prune.hpp"
#include "passes/sparsity.hpp"

namespace slmopt::passes {
namespace {

// A MultiHeadAttention input: MatMul(x, W [in, width]), maybe + Add(b).
struct Projection {
  Node* matmul = nullptr;
  Node* add = nullptr;
  size_t bias_input = 0;  // which input of `add` is b
};

struct FusedAttention {
  Node* attention = nullptr;
  Node* o = nullptr;  // MatMul(context, W_o [v, out])
  int64_t heads = 0, q = 0, v = 0;  // section widths; k equals q
  bool packed = true;               // Attention; MultiHeadAttention has `projections`
  Projection projections[3];        // query, key, value
  int64_t dq() const { return q / heads; }
  int64_t dv() const { return v / heads; }
  // The node's own packed bias [q + k + v]: Attention's input 2, MultiHeadAttention's 3.
  size_t bias_input() const { return packed ? 2 : 3; }
  bool has_bias() const { return attention->inputs.size() > bias_input() && !attention->inputs[bias_input()].empty(); }
};

[[noreturn]] void refuse(const Node& n, const std::string& why) {
  throw_usage("--structured heads: com.microsoft Attention '" + n.name + "' " + why);
}

const Tensor& f32_constant(const Graph& g, const Node& n, size_t input, const char* role) {
  const NamedTensor* t = input < n.inputs.size() ? g.find_initializer(n.inputs[input]) : nullptr;
  if (!t || t->tensor.is_quantized() || t->tensor.dtype() != DType::F32)
    refuse(n, std::string("has no f32 initializer as its ") + role + " (prune before quantizing)");
  return t->tensor;
}

const Node* only_reader(const std::map<std::string, std::vector<Node*>>& readers, const std::string& value) {
  auto it = readers.find(value);
  return it == readers.end() || it->second.size() != 1 ? nullptr : it->second[0];
}

// MultiHeadAttention's input `i`: a MatMul with a constant [in, width] weight, maybe behind an Add of a constant.
Projection projection_of(Graph& g, const Node& n, size_t i, int64_t width,
                         const std::map<std::string, std::vector<Node*>>& readers, const std::map<std::string, Node*>& producers) {
  static const char* const kRole[] = {"query", "key", "value"};
  Projection p;
  auto producer = [&](const std::string& value) {
    auto it = producers.find(value);
    return it == producers.end() ? nullptr : it->second;
  };
  Node* src = i < n.inputs.size() ? producer(n.inputs[i]) : nullptr;
  if (src && src->op_type == "Add" && src->inputs.size() == 2 && only_reader(readers, src->outputs[0]) == &n) {
    const size_t b = g.find_initializer(src->inputs[0]) ? 0 : 1;
    p.add = src;
    p.bias_input = b;
    if (f32_constant(g, *src, b, "bias").numel() != width) refuse(n, std::string("has a ") + kRole[i] + " bias not of width " + std::to_string(width));
    src = producer(src->inputs[1 - b]);
  }
  if (!src || src->op_type != "MatMul" || only_reader(readers, src->outputs[0]) != (p.add ? p.add : &n))
    refuse(n, std::string("does not read its ") + kRole[i] + " from a MatMul of its own");
  const Tensor& w = f32_constant(g, *src, 1, "projection weight");
  if (w.rank() != 2 || w.shape()[1] != width)
    refuse(n, std::string("reads a ") + kRole[i] + " weight " + shape_to_string(w.shape()) + ", not [in, " + std::to_string(width) + "]");
  p.matmul = src;
  return p;
}

void find_output(Graph& g, FusedAttention& a, const std::map<std::string, std::vector<Node*>>& readers) {
  const Node& n = *a.attention;
  auto it = readers.find(n.outputs.at(0));
  if (it == readers.end() || it->second.size() != 1 || it->second[0]->op_type != "MatMul" ||
      it->second[0]->inputs.at(0) != n.outputs[0])
    refuse(n, "is not read by exactly one MatMul projecting its heads back");
  a.o = it->second[0];
  const Tensor& wo = f32_constant(g, *a.o, 1, "output projection weight");
  if (wo.rank() != 2 || wo.shape()[0] != a.v)
    refuse(n, "feeds an output weight " + shape_to_string(wo.shape()) + ", not [" + std::to_string(a.v) + ", out]");
}

FusedAttention find_multi_head(Graph& g, Node& n, const std::map<std::string, std::vector<Node*>>& readers,
                               const std::map<std::string, Node*>& producers) {
  FusedAttention a;
  a.attention = &n;
  a.packed = false;
  for (size_t i = 5; i < n.inputs.size(); ++i)
    if (!n.inputs[i].empty()) refuse(n, "has past state or an attention bias, whose head axis is not pruned");
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty()) refuse(n, "has present outputs");
  const Attribute* heads = n.find_attribute("num_heads");
  a.heads = heads ? heads->i : 0;
  if (a.heads <= 0 || n.inputs.size() < 3 || n.inputs[1].empty() || n.inputs[2].empty())
    refuse(n, "has no num_heads or reads packed query/key/value");
  auto width_of = [&](size_t i) {
    auto it = producers.find(n.inputs[i]);
    const Node* src = it == producers.end() ? nullptr : it->second;
    if (src && src->op_type == "Add") {
      const size_t b = g.find_initializer(src->inputs.at(0)) ? 0 : 1;
      const NamedTensor* t = g.find_initializer(src->inputs.at(b));
      return t ? t->tensor.numel() : int64_t{0};
    }
    const NamedTensor* t = src && src->op_type == "MatMul" && src->inputs.size() == 2 ? g.find_initializer(src->inputs[1]) : nullptr;
    return t && t->tensor.rank() == 2 ? t->tensor.shape()[1] : int64_t{0};
  };
  a.q = width_of(0);
  a.v = width_of(2);
  if (a.q <= 0 || a.v <= 0 || a.q % a.heads != 0 || a.v % a.heads != 0)
    refuse(n, "has projections of widths " + std::to_string(a.q) + " and " + std::to_string(a.v) + " that do not split into " +
                  std::to_string(a.heads) + " heads");
  const int64_t widths[3] = {a.q, a.q, a.v};
  for (size_t i = 0; i < 3; ++i) a.projections[i] = projection_of(g, n, i, widths[i], readers, producers);
  if (a.has_bias() && f32_constant(g, n, 3, "bias").numel() != 2 * a.q + a.v) refuse(n, "has a bias that does not match its projections");
  find_output(g, a, readers);
  return a;
}

FusedAttention find_fused(Graph& g, Node& n, const std::map<std::string, std::vector<Node*>>& readers) {
  FusedAttention a;
  a.attention = &n;
  for (size_t i = 4; i < n.inputs.size(); ++i)
    if (!n.inputs[i].empty()) refuse(n, "has past state or an attention bias, whose head axis is not pruned");
  if (n.outputs.size() > 1 && !n.outputs[1].empty()) refuse(n, "has a present output");
  const Attribute* rotary = n.find_attribute("do_rotary");
  if (rotary && rotary->i != 0) refuse(n, "uses do_rotary");
  const Attribute* heads = n.find_attribute("num_heads");
  a.heads = heads ? heads->i : 0;
  const Tensor& w = f32_constant(g, n, 1, "weights");
  if (w.rank() != 2 || a.heads <= 0) refuse(n, "has weights " + shape_to_string(w.shape()) + " or no num_heads");
  const Attribute* sizes = n.find_attribute("qkv_hidden_sizes");
  if (sizes && sizes->ints.size() == 3 && sizes->ints[0] == sizes->ints[1]) {
    a.q = sizes->ints[0];
    a.v = sizes->ints[2];
  } else if (!sizes && w.shape()[1] % 3 == 0) {
    a.q = a.v = w.shape()[1] / 3;
  } else {
    refuse(n, "has q/k/v sections it does not state as equal q and k widths");
  }
  if (a.q <= 0 || a.v <= 0 || 2 * a.q + a.v != w.shape()[1] || a.q % a.heads != 0 || a.v % a.heads != 0)
    refuse(n, "has sections " + std::to_string(a.q) + ", " + std::to_string(a.q) + ", " + std::to_string(a.v) +
                  " that do not split weights " + shape_to_string(w.shape()) + " into " + std::to_string(a.heads) + " heads");
  if (a.has_bias() && f32_constant(g, n, 2, "bias").numel() != w.shape()[1])
    refuse(n, "has a bias that does not match its weights");
  find_output(g, a, readers);
  return a;
}

// The weight columns (and bias entries) of the kept heads, section by section.
std::vector<int64_t> kept_columns(const FusedAttention& a, const std::vector<int64_t>& keep) {
  std::vector<int64_t> cols;
  const int64_t starts[3] = {0, a.q, 2 * a.q}, widths[3] = {a.dq(), a.dq(), a.dv()};
  for (int s = 0; s < 3; ++s)
    for (int64_t h : keep)
      for (int64_t c = 0; c < widths[s]; ++c) cols.push_back(starts[s] + h * widths[s] + c);
  return cols;
}

// The columns of heads `keep` in a weight of heads `width` wide.
std::vector<int64_t> head_columns(int64_t width, const std::vector<int64_t>& keep) {
  std::vector<int64_t> cols;
  for (int64_t h : keep)
    for (int64_t c = h * width; c < (h + 1) * width; ++c) cols.push_back(c);
  return cols;
}

std::vector<int64_t> context_rows(const FusedAttention& a, const std::vector<int64_t>& keep) { return head_columns(a.dv(), keep); }

Tensor take_entries(const Tensor& b, const std::vector<int64_t>& cols) {
  Tensor cut(DType::F32, {static_cast<int64_t>(cols.size())});
  for (size_t i = 0; i < cols.size(); ++i) cut.mutable_data<float>()[i] = b.data<float>()[cols[i]];
  return cut;
}

// magnitude: the squared weights a head owns in the packed projection and the
// output weight; wanda: the energy its context feeds the output MatMul on
// calibration inputs, sum_c E[x_c^2] ||W_o[c, :]||^2.
std::vector<double> head_scores(const Graph& g, const FusedAttention& a, const std::string& method,
                                const calib::InputStats* s) {
  const Tensor& wo = f32_constant(g, *a.o, 1, "output projection weight");
  const int64_t out = wo.shape()[1];
  const std::vector<float> energy = method == "wanda" ? importance_of(*s) : std::vector<float>{};
  std::vector<double> score(static_cast<size_t>(a.heads), 0.0);
  for (int64_t h = 0; h < a.heads; ++h) {
    double& sc = score[static_cast<size_t>(h)];
    for (int64_t c : context_rows(a, {h})) {
      double row = 0;
      for (int64_t j = 0; j < out; ++j) row += static_cast<double>(wo.data<float>()[c * out + j]) * wo.data<float>()[c * out + j];
      sc += method == "wanda" ? energy[static_cast<size_t>(c)] * row : row;
    }
    if (method == "wanda") continue;
    auto add_columns = [&](const Tensor& w, const std::vector<int64_t>& cols) {
      const int64_t in = w.shape()[0], width = w.shape()[1];
      for (int64_t c : cols)
        for (int64_t r = 0; r < in; ++r) sc += static_cast<double>(w.data<float>()[r * width + c]) * w.data<float>()[r * width + c];
    };
    if (a.packed) {
      add_columns(f32_constant(g, *a.attention, 1, "weights"), kept_columns(a, {h}));
      continue;
    }
    for (int i = 0; i < 3; ++i)
      add_columns(f32_constant(g, *a.projections[i].matmul, 1, "projection weight"), head_columns(i == 2 ? a.dv() : a.dq(), {h}));
  }
  return score;
}

void set_attribute(Node& n, const Attribute& value) {
  for (Attribute& attr : n.attributes)
    if (attr.name == value.name) {
      attr = value;
      return;
    }
  n.attributes.push_back(value);
}

void shrink(Graph& g, const FusedAttention& a, const std::vector<int64_t>& keep, std::set<std::string>& replaced) {
  Node& n = *a.attention;
  const std::vector<int64_t> cols = kept_columns(a, keep);
  if (a.packed) {
    replaced.insert(n.inputs[1]);
    set_input(g, n, 1, n.name + "/pruned_heads/weights", take_cols(f32_constant(g, n, 1, "weights"), cols));
  } else {
    static const char* const kRole[] = {"query", "key", "value"};
    for (int i = 0; i < 3; ++i) {
      const Projection& p = a.projections[i];
      const std::vector<int64_t> own = head_columns(i == 2 ? a.dv() : a.dq(), keep);
      const std::string prefix = n.name + "/pruned_heads/" + kRole[i];
      replaced.insert(p.matmul->inputs[1]);
      set_input(g, *p.matmul, 1, prefix + "_weight", take_cols(f32_constant(g, *p.matmul, 1, "projection weight"), own));
      if (p.add) {
        replaced.insert(p.add->inputs[p.bias_input]);
        set_input(g, *p.add, p.bias_input, prefix + "_bias", take_entries(f32_constant(g, *p.add, p.bias_input, "bias"), own));
      }
    }
  }
  if (a.has_bias()) {
    replaced.insert(n.inputs[a.bias_input()]);
    set_input(g, n, a.bias_input(), n.name + "/pruned_heads/bias", take_entries(f32_constant(g, n, a.bias_input(), "bias"), cols));
  }
  replaced.insert(a.o->inputs[1]);
  set_input(g, *a.o, 1, n.name + "/pruned_heads/output_weight",
            take_rows(f32_constant(g, *a.o, 1, "output projection weight"), context_rows(a, keep)));
  const int64_t kept = static_cast<int64_t>(keep.size());
  set_attribute(n, Attribute::integer("num_heads", kept));
  if (n.find_attribute("qkv_hidden_sizes"))
    set_attribute(n, Attribute::integers("qkv_hidden_sizes", {kept * a.dq(), kept * a.dq(), kept * a.dv()}));
}

int64_t params_of(const Graph& g, const FusedAttention& a) {
  int64_t n = f32_constant(g, *a.o, 1, "output projection weight").numel();
  if (a.has_bias()) n += f32_constant(g, *a.attention, a.bias_input(), "bias").numel();
  if (a.packed) return n + f32_constant(g, *a.attention, 1, "weights").numel();
  for (const Projection& p : a.projections) {
    n += f32_constant(g, *p.matmul, 1, "projection weight").numel();
    if (p.add) n += f32_constant(g, *p.add, p.bias_input, "bias").numel();
  }
  return n;
}

std::vector<std::string> weights_of(const FusedAttention& a) {
  if (a.packed) return {a.attention->inputs[1]};
  return {a.projections[0].matmul->inputs[1], a.projections[1].matmul->inputs[1], a.projections[2].matmul->inputs[1]};
}

}  // namespace

bool prune_contrib_heads(Model& model, const PruneConfig& config, PruneReport& report) {
  Graph& g = model.graph;
  std::map<std::string, std::vector<Node*>> readers;
  std::map<std::string, Node*> producers;
  for (Node& n : g.nodes) {
    for (const auto& in : n.inputs) readers[in].push_back(&n);
    for (const auto& out : n.outputs) producers[out] = &n;
  }
  std::vector<FusedAttention> layers;
  for (Node& n : g.nodes) {
    if (n.domain != "com.microsoft") continue;
    if (n.op_type == "Attention") layers.push_back(find_fused(g, n, readers));
    if (n.op_type == "MultiHeadAttention") layers.push_back(find_multi_head(g, n, readers, producers));
  }
  if (layers.empty()) return false;
  std::vector<int64_t> rule_hits(config.rules.rules.size(), 0);
  std::set<std::string> replaced;
  for (const FusedAttention& a : layers) {
    Node& n = *a.attention;
    PrunedGroup row;
    row.producers = weights_of(a);
    row.consumers = {a.o->inputs[1]};
    row.channels = row.kept = a.heads;
    const double fraction = structured_fraction(config, row.producers[0], n.name, n.op_type, "heads", row, rule_hits);
    row.params_before = row.params_after = params_of(g, a);
    const int64_t remove = std::min(a.heads - 1, zeros_before(fraction, a.heads));
    if (remove > 0) {
      const calib::InputStats* s = nullptr;
      if (row.method == "wanda") {
        s = layer_stats(config.stats, a.o->inputs[1], a.v);
        if (!s) throw_usage("weight '" + a.o->inputs[1] + "': structured wanda needs calibration statistics of its layer");
      }
      const std::vector<int64_t> keep = keep_highest(head_scores(g, a, row.method, s), remove);
      shrink(g, a, keep, replaced);
      row.producers = weights_of(a);
      row.consumers = {a.o->inputs[1]};
      row.kept = static_cast<int64_t>(keep.size());
      row.params_after = params_of(g, a);
    }
    report.groups.push_back(row);
  }
  drop_unread(g, replaced);
  for (size_t i = 0; i < rule_hits.size(); ++i)
    if (rule_hits[i] == 0) report.warnings.push_back(config.rules.rules[i].label + " matched no attention layer");
  return true;
}

}  // namespace slmopt::passes
