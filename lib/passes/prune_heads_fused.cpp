// Attention heads of fused attention nodes, whose head counts are attributes:
// - com.microsoft Attention (ONNX Runtime's transformer optimizer): one packed
//   projection, weights [in, q | k | v] and bias, `num_heads` heads;
// - com.microsoft MultiHeadAttention: q, k and v from three MatMuls (each maybe
//   + Add bias), their biases maybe packed in the node's own bias input;
// - ONNX Attention (opset 23) on 3-D inputs: q, k and v from three MatMuls,
//   q_num_heads query heads sharing kv_num_heads key/value heads.
// Each node's context goes to one MatMul behind it. A key/value head goes
// with the query heads that read it: their columns leave the projections
// (each section of a packed one) and biases, their rows the output MatMul's
// weight, and the head-count attributes drop to what is kept. Every piece is
// checked before anything changes.
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

enum class Kind { PackedAttention, MultiHead, Onnx };

// An input of the node: MatMul(x, W [in, width]), maybe + Add(b).
struct Projection {
  Node* matmul = nullptr;
  Node* add = nullptr;
  size_t bias_input = 0;  // which input of `add` is b
};

struct FusedAttention {
  Kind kind = Kind::PackedAttention;
  Node* attention = nullptr;
  Node* o = nullptr;  // MatMul(context, W_o [q_heads * dv, out])
  int64_t q_heads = 0, kv_heads = 0, dq = 0, dv = 0;
  Projection projections[3];  // query, key, value (not for PackedAttention)
  int64_t group() const { return q_heads / kv_heads; }
  int64_t width(int section) const {
    return section == 0 ? q_heads * dq : section == 1 ? kv_heads * dq : kv_heads * dv;
  }
  int64_t head_width(int section) const { return section == 2 ? dv : dq; }
  // The node's own bias [q | k | v]: Attention's input 2, MultiHeadAttention's 3.
  size_t bias_input() const { return kind == Kind::PackedAttention ? 2 : 3; }
  bool has_bias() const {
    return kind != Kind::Onnx && attention->inputs.size() > bias_input() && !attention->inputs[bias_input()].empty();
  }
};

[[noreturn]] void refuse(const Node& n, const std::string& why) {
  throw_usage("--structured heads: " + (n.domain.empty() ? std::string() : n.domain + ".") + n.op_type + " '" + n.name +
              "' " + why);
}

const Tensor& f32_constant(const Graph& g, const Node& n, size_t input, const char* role) {
  const NamedTensor* t = input < n.inputs.size() ? g.find_initializer(n.inputs[input]) : nullptr;
  if (!t || t->tensor.is_quantized() || t->tensor.dtype() != DType::F32)
    refuse(n, std::string("has no f32 initializer as its ") + role + " (prune before quantizing)");
  return t->tensor;
}

struct GraphIndex {
  std::map<std::string, std::vector<Node*>> readers;
  std::map<std::string, Node*> producers;
  explicit GraphIndex(Graph& g) {
    for (Node& n : g.nodes) {
      for (const auto& in : n.inputs) readers[in].push_back(&n);
      for (const auto& out : n.outputs) producers[out] = &n;
    }
  }
  Node* producer(const std::string& value) const {
    auto it = producers.find(value);
    return it == producers.end() ? nullptr : it->second;
  }
  const Node* only_reader(const std::string& value) const {
    auto it = readers.find(value);
    return it == readers.end() || it->second.size() != 1 ? nullptr : it->second[0];
  }
};

// The width of the MatMul (+ Add) feeding input i, 0 when it is no such thing.
int64_t projection_width(const Graph& g, const GraphIndex& index, const Node& n, size_t i) {
  const Node* src = i < n.inputs.size() ? index.producer(n.inputs[i]) : nullptr;
  if (src && src->op_type == "Add" && src->inputs.size() == 2)
    src = index.producer(src->inputs[g.find_initializer(src->inputs[0]) ? 1 : 0]);
  const NamedTensor* w =
      src && src->op_type == "MatMul" && src->inputs.size() == 2 ? g.find_initializer(src->inputs[1]) : nullptr;
  return w && w->tensor.rank() == 2 ? w->tensor.shape()[1] : 0;
}

Projection projection_of(const Graph& g, const GraphIndex& index, const Node& n, size_t i, int64_t width) {
  static const char* const kRole[] = {"query", "key", "value"};
  Projection p;
  Node* src = index.producer(n.inputs.at(i));
  if (src && src->op_type == "Add" && src->inputs.size() == 2 && index.only_reader(src->outputs[0]) == &n) {
    const size_t b = g.find_initializer(src->inputs[0]) ? 0 : 1;
    p.add = src;
    p.bias_input = b;
    if (f32_constant(g, *src, b, "bias").numel() != width)
      refuse(n, std::string("has a ") + kRole[i] + " bias not of width " + std::to_string(width));
    src = index.producer(src->inputs[1 - b]);
  }
  if (!src || src->op_type != "MatMul" || index.only_reader(src->outputs[0]) != (p.add ? p.add : &n))
    refuse(n, std::string("does not read its ") + kRole[i] + " from a MatMul of its own");
  const Tensor& w = f32_constant(g, *src, 1, "projection weight");
  if (w.rank() != 2 || w.shape()[1] != width)
    refuse(n, std::string("reads a ") + kRole[i] + " weight " + shape_to_string(w.shape()) + ", not [in, " +
                  std::to_string(width) + "]");
  p.matmul = src;
  return p;
}

void find_output(const Graph& g, const GraphIndex& index, FusedAttention& a) {
  const Node& n = *a.attention;
  const Node* o = index.only_reader(n.outputs.at(0));
  if (!o || o->op_type != "MatMul" || o->inputs.at(0) != n.outputs[0])
    refuse(n, "is not read by exactly one MatMul projecting its heads back");
  a.o = const_cast<Node*>(o);
  const Tensor& wo = f32_constant(g, *a.o, 1, "output projection weight");
  if (wo.rank() != 2 || wo.shape()[0] != a.q_heads * a.dv)
    refuse(n, "feeds an output weight " + shape_to_string(wo.shape()) + ", not [" + std::to_string(a.q_heads * a.dv) +
                  ", out]");
}

int64_t attribute(const Node& n, const char* name) {
  const Attribute* a = n.find_attribute(name);
  return a ? a->i : 0;
}

void refuse_extra_inputs(const Node& n, size_t first, const char* what) {
  for (size_t i = first; i < n.inputs.size(); ++i)
    if (!n.inputs[i].empty()) refuse(n, std::string("has ") + what + ", whose head axis is not pruned");
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty()) refuse(n, "has present (cache) outputs");
}

FusedAttention find_packed(const Graph& g, const GraphIndex& index, Node& n) {
  FusedAttention a;
  a.attention = &n;
  refuse_extra_inputs(n, 4, "past state or an attention bias");
  if (attribute(n, "do_rotary") != 0) refuse(n, "uses do_rotary");
  a.q_heads = a.kv_heads = attribute(n, "num_heads");
  const Tensor& w = f32_constant(g, n, 1, "weights");
  if (w.rank() != 2 || a.q_heads <= 0) refuse(n, "has weights " + shape_to_string(w.shape()) + " or no num_heads");
  int64_t q = 0, v = 0;
  const Attribute* sizes = n.find_attribute("qkv_hidden_sizes");
  if (sizes && sizes->ints.size() == 3 && sizes->ints[0] == sizes->ints[1]) {
    q = sizes->ints[0];
    v = sizes->ints[2];
  } else if (!sizes && w.shape()[1] % 3 == 0) {
    q = v = w.shape()[1] / 3;
  } else {
    refuse(n, "has q/k/v sections it does not state as equal q and k widths");
  }
  if (q <= 0 || v <= 0 || 2 * q + v != w.shape()[1] || q % a.q_heads != 0 || v % a.q_heads != 0)
    refuse(n, "has sections " + std::to_string(q) + ", " + std::to_string(q) + ", " + std::to_string(v) +
                  " that do not split weights " + shape_to_string(w.shape()) + " into " + std::to_string(a.q_heads) +
                  " heads");
  a.dq = q / a.q_heads;
  a.dv = v / a.q_heads;
  if (a.has_bias() && f32_constant(g, n, 2, "bias").numel() != w.shape()[1])
    refuse(n, "has a bias that does not match its weights");
  find_output(g, index, a);
  return a;
}

FusedAttention find_separate(const Graph& g, const GraphIndex& index, Node& n, Kind kind) {
  FusedAttention a;
  a.kind = kind;
  a.attention = &n;
  if (n.inputs.size() < 3 || n.inputs[1].empty() || n.inputs[2].empty()) refuse(n, "reads packed query/key/value");
  if (kind == Kind::MultiHead) {
    refuse_extra_inputs(n, 5, "past state or an attention bias");
    a.q_heads = a.kv_heads = attribute(n, "num_heads");
  } else {
    refuse_extra_inputs(n, 4, "past state");
    a.q_heads = attribute(n, "q_num_heads");
    a.kv_heads = attribute(n, "kv_num_heads");
    if (a.q_heads <= 0 || a.kv_heads <= 0) refuse(n, "has 4-D inputs (no q_num_heads and kv_num_heads)");
  }
  const int64_t q = projection_width(g, index, n, 0), k = projection_width(g, index, n, 1),
                v = projection_width(g, index, n, 2);
  if (a.q_heads <= 0 || a.kv_heads <= 0 || a.q_heads % a.kv_heads != 0 || q <= 0 || q % a.q_heads != 0 || v <= 0 ||
      v % a.kv_heads != 0 || k != q / a.q_heads * a.kv_heads)
    refuse(n, "has projections of widths " + std::to_string(q) + ", " + std::to_string(k) + ", " + std::to_string(v) +
                  " that do not split into " + std::to_string(a.q_heads) + " query and " + std::to_string(a.kv_heads) +
                  " key/value heads");
  a.dq = q / a.q_heads;
  a.dv = v / a.kv_heads;
  for (int i = 0; i < 3; ++i) a.projections[i] = projection_of(g, index, n, static_cast<size_t>(i), a.width(i));
  if (a.has_bias() && f32_constant(g, n, 3, "bias").numel() != a.width(0) + a.width(1) + a.width(2))
    refuse(n, "has a bias that does not match its projections");
  find_output(g, index, a);
  return a;
}

// The columns of heads `keep` in a weight of heads `width` wide.
std::vector<int64_t> head_columns(int64_t width, const std::vector<int64_t>& keep) {
  std::vector<int64_t> cols;
  for (int64_t h : keep)
    for (int64_t c = h * width; c < (h + 1) * width; ++c) cols.push_back(c);
  return cols;
}

// The query heads that read key/value heads `keep`.
std::vector<int64_t> query_heads(const FusedAttention& a, const std::vector<int64_t>& keep) {
  std::vector<int64_t> heads;
  for (int64_t g : keep)
    for (int64_t h = g * a.group(); h < (g + 1) * a.group(); ++h) heads.push_back(h);
  return heads;
}

// Columns of section s (query, key, value) that key/value heads `keep` own.
std::vector<int64_t> section_columns(const FusedAttention& a, int s, const std::vector<int64_t>& keep) {
  return head_columns(a.head_width(s), s == 0 ? query_heads(a, keep) : keep);
}

// The same in a packed [q | k | v] weight or bias.
std::vector<int64_t> packed_columns(const FusedAttention& a, const std::vector<int64_t>& keep) {
  std::vector<int64_t> cols;
  int64_t start = 0;
  for (int s = 0; s < 3; ++s) {
    for (int64_t c : section_columns(a, s, keep)) cols.push_back(start + c);
    start += a.width(s);
  }
  return cols;
}

std::vector<int64_t> context_rows(const FusedAttention& a, const std::vector<int64_t>& keep) {
  return head_columns(a.dv, query_heads(a, keep));
}

Tensor take_entries(const Tensor& b, const std::vector<int64_t>& cols) {
  Tensor cut(DType::F32, {static_cast<int64_t>(cols.size())});
  for (size_t i = 0; i < cols.size(); ++i) cut.mutable_data<float>()[i] = b.data<float>()[cols[i]];
  return cut;
}

// One score per key/value head with its query heads. magnitude: their squared
// weights in the projections and the output weight; wanda: the energy their
// contexts feed the output MatMul on calibration inputs, sum_c E[x_c^2] ||W_o[c, :]||^2.
std::vector<double> head_scores(const Graph& g, const FusedAttention& a, const std::string& method,
                                const calib::InputStats* s) {
  const Tensor& wo = f32_constant(g, *a.o, 1, "output projection weight");
  const std::vector<float> energy = method == "wanda" ? importance_of(*s) : std::vector<float>{};
  std::vector<double> score(static_cast<size_t>(a.kv_heads), 0.0);
  for (int64_t head = 0; head < a.kv_heads; ++head) {
    double& sc = score[static_cast<size_t>(head)];
    sc = rows_energy(wo, context_rows(a, {head}), method == "wanda" ? &energy : nullptr);
    if (method == "wanda") continue;
    if (a.kind == Kind::PackedAttention) {
      sc += columns_energy(f32_constant(g, *a.attention, 1, "weights"), packed_columns(a, {head}));
      continue;
    }
    for (int i = 0; i < 3; ++i)
      sc += columns_energy(f32_constant(g, *a.projections[i].matmul, 1, "projection weight"), section_columns(a, i, {head}));
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
  const std::string prefix = n.name + "/pruned_heads/";
  if (a.kind == Kind::PackedAttention) {
    replaced.insert(n.inputs[1]);
    set_input(g, n, 1, prefix + "weights", take_cols(f32_constant(g, n, 1, "weights"), packed_columns(a, keep)));
  } else {
    static const char* const kRole[] = {"query", "key", "value"};
    for (int i = 0; i < 3; ++i) {
      const Projection& p = a.projections[i];
      const std::vector<int64_t> own = section_columns(a, i, keep);
      replaced.insert(p.matmul->inputs[1]);
      set_input(g, *p.matmul, 1, prefix + kRole[i] + "_weight",
                take_cols(f32_constant(g, *p.matmul, 1, "projection weight"), own));
      if (p.add) {
        replaced.insert(p.add->inputs[p.bias_input]);
        set_input(g, *p.add, p.bias_input, prefix + kRole[i] + "_bias",
                  take_entries(f32_constant(g, *p.add, p.bias_input, "bias"), own));
      }
    }
  }
  if (a.has_bias()) {
    replaced.insert(n.inputs[a.bias_input()]);
    set_input(g, n, a.bias_input(), prefix + "bias",
              take_entries(f32_constant(g, n, a.bias_input(), "bias"), packed_columns(a, keep)));
  }
  replaced.insert(a.o->inputs[1]);
  set_input(g, *a.o, 1, prefix + "output_weight",
            take_rows(f32_constant(g, *a.o, 1, "output projection weight"), context_rows(a, keep)));
  const int64_t kept = static_cast<int64_t>(keep.size());
  if (a.kind == Kind::Onnx) {
    set_attribute(n, Attribute::integer("q_num_heads", kept * a.group()));
    set_attribute(n, Attribute::integer("kv_num_heads", kept));
    return;
  }
  set_attribute(n, Attribute::integer("num_heads", kept));
  if (n.find_attribute("qkv_hidden_sizes"))
    set_attribute(n, Attribute::integers("qkv_hidden_sizes", {kept * a.dq, kept * a.dq, kept * a.dv}));
}

int64_t params_of(const Graph& g, const FusedAttention& a) {
  int64_t n = f32_constant(g, *a.o, 1, "output projection weight").numel();
  if (a.has_bias()) n += f32_constant(g, *a.attention, a.bias_input(), "bias").numel();
  if (a.kind == Kind::PackedAttention) return n + f32_constant(g, *a.attention, 1, "weights").numel();
  for (const Projection& p : a.projections) {
    n += f32_constant(g, *p.matmul, 1, "projection weight").numel();
    if (p.add) n += f32_constant(g, *p.add, p.bias_input, "bias").numel();
  }
  return n;
}

std::vector<std::string> weights_of(const FusedAttention& a) {
  if (a.kind == Kind::PackedAttention) return {a.attention->inputs[1]};
  return {a.projections[0].matmul->inputs[1], a.projections[1].matmul->inputs[1], a.projections[2].matmul->inputs[1]};
}

}  // namespace

bool prune_fused_heads(Model& model, const PruneConfig& config, PruneReport& report) {
  Graph& g = model.graph;
  std::vector<FusedAttention> layers;
  {
    const GraphIndex index(g);
    for (Node& n : g.nodes) {
      if (n.domain == "com.microsoft" && n.op_type == "Attention") layers.push_back(find_packed(g, index, n));
      if (n.domain == "com.microsoft" && n.op_type == "MultiHeadAttention")
        layers.push_back(find_separate(g, index, n, Kind::MultiHead));
      if ((n.domain.empty() || n.domain == "ai.onnx") && n.op_type == "Attention")
        layers.push_back(find_separate(g, index, n, Kind::Onnx));
    }
  }
  if (layers.empty()) return false;
  std::vector<int64_t> rule_hits(config.rules.rules.size(), 0);
  std::set<std::string> replaced;
  for (const FusedAttention& a : layers) {
    Node& n = *a.attention;
    PrunedGroup row;
    row.producers = weights_of(a);
    row.consumers = {a.o->inputs[1]};
    row.channels = row.kept = a.kv_heads;
    const double fraction = structured_fraction(config, row.producers[0], n.name, n.op_type, "heads", row, rule_hits);
    row.params_before = row.params_after = params_of(g, a);
    const int64_t remove = std::min(a.kv_heads - 1, zeros_before(fraction, a.kv_heads));
    if (remove > 0) {
      const calib::InputStats* s =
          row.method == "wanda" ? &wanda_stats(config.stats, a.o->inputs[1], a.q_heads * a.dv) : nullptr;
      const std::vector<int64_t> keep = keep_highest(head_scores(g, a, row.method, s), remove);
      shrink(g, a, keep, replaced);
      row.producers = weights_of(a);
      row.consumers = {a.o->inputs[1]};
      row.kept = static_cast<int64_t>(keep.size());
      row.params_after = params_of(g, a);
    }
    report.groups.push_back(row);
  }
  finish_heads(g, replaced, config, rule_hits, report);
  return true;
}

}  // namespace slmopt::passes
