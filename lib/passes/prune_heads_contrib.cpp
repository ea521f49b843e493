// Attention heads of com.microsoft Attention, the fused node ONNX Runtime's
// transformer optimizer writes: one packed projection (weights [in, q + k + v],
// optional bias) read by `num_heads` heads, whose contexts a MatMul behind the
// node projects back. Removing a head takes its columns out of each of the
// three sections of the weights and bias, its rows out of the output MatMul's
// weight, and lowers `num_heads` (and `qkv_hidden_sizes` when stated).
// Every piece is checked before anything changes.
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

struct FusedAttention {
  Node* attention = nullptr;
  Node* o = nullptr;  // MatMul(context, W_o [v, out])
  int64_t heads = 0, q = 0, v = 0;  // section widths; k equals q
  int64_t dq() const { return q / heads; }
  int64_t dv() const { return v / heads; }
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

FusedAttention find_fused(Graph& g, Node& n, const std::map<std::string, std::vector<Node*>>& readers) {
  FusedAttention a{&n};
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
  if (n.inputs.size() > 2 && !n.inputs[2].empty() && f32_constant(g, n, 2, "bias").numel() != w.shape()[1])
    refuse(n, "has a bias that does not match its weights");
  auto it = readers.find(n.outputs.at(0));
  if (it == readers.end() || it->second.size() != 1 || it->second[0]->op_type != "MatMul" ||
      it->second[0]->inputs.at(0) != n.outputs[0])
    refuse(n, "is not read by exactly one MatMul projecting its heads back");
  a.o = it->second[0];
  const Tensor& wo = f32_constant(g, *a.o, 1, "output projection weight");
  if (wo.rank() != 2 || wo.shape()[0] != a.v)
    refuse(n, "feeds an output weight " + shape_to_string(wo.shape()) + ", not [" + std::to_string(a.v) + ", out]");
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

std::vector<int64_t> context_rows(const FusedAttention& a, const std::vector<int64_t>& keep) {
  std::vector<int64_t> rows;
  for (int64_t h : keep)
    for (int64_t c = h * a.dv(); c < (h + 1) * a.dv(); ++c) rows.push_back(c);
  return rows;
}

// magnitude: the squared weights a head owns in the packed projection and the
// output weight; wanda: the energy its context feeds the output MatMul on
// calibration inputs, sum_c E[x_c^2] ||W_o[c, :]||^2.
std::vector<double> head_scores(const Graph& g, const FusedAttention& a, const std::string& method,
                                const calib::InputStats* s) {
  const Tensor& w = f32_constant(g, *a.attention, 1, "weights");
  const Tensor& wo = f32_constant(g, *a.o, 1, "output projection weight");
  const int64_t in = w.shape()[0], width = w.shape()[1], out = wo.shape()[1];
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
    for (int64_t c : kept_columns(a, {h}))
      for (int64_t r = 0; r < in; ++r) sc += static_cast<double>(w.data<float>()[r * width + c]) * w.data<float>()[r * width + c];
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
  replaced.insert(n.inputs[1]);
  set_input(g, n, 1, n.name + "/pruned_heads/weights", take_cols(f32_constant(g, n, 1, "weights"), cols));
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    const Tensor& b = f32_constant(g, n, 2, "bias");
    Tensor cut(DType::F32, {static_cast<int64_t>(cols.size())});
    for (size_t i = 0; i < cols.size(); ++i) cut.mutable_data<float>()[i] = b.data<float>()[cols[i]];
    replaced.insert(n.inputs[2]);
    set_input(g, n, 2, n.name + "/pruned_heads/bias", cut);
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
  int64_t n = f32_constant(g, *a.attention, 1, "weights").numel() + f32_constant(g, *a.o, 1, "output projection weight").numel();
  if (a.attention->inputs.size() > 2 && !a.attention->inputs[2].empty()) n += f32_constant(g, *a.attention, 2, "bias").numel();
  return n;
}

}  // namespace

bool prune_contrib_heads(Model& model, const PruneConfig& config, PruneReport& report) {
  Graph& g = model.graph;
  std::map<std::string, std::vector<Node*>> readers;
  for (Node& n : g.nodes)
    for (const auto& in : n.inputs) readers[in].push_back(&n);
  std::vector<FusedAttention> layers;
  for (Node& n : g.nodes)
    if (n.op_type == "Attention" && n.domain == "com.microsoft") layers.push_back(find_fused(g, n, readers));
  if (layers.empty()) return false;
  std::vector<int64_t> rule_hits(config.rules.rules.size(), 0);
  std::set<std::string> replaced;
  for (const FusedAttention& a : layers) {
    Node& n = *a.attention;
    PrunedGroup row;
    row.producers = {n.inputs[1]};
    row.consumers = {a.o->inputs[1]};
    row.channels = row.kept = a.heads;
    const double fraction = structured_fraction(config, n.inputs[1], n.name, n.op_type, "heads", row, rule_hits);
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
      row.producers = {n.inputs[1]};
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
