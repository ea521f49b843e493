// Attention heads in ONNX graphs as exporters write them (torch.onnx of
// BERT, ViT or GPT-style eager attention): per head-split Reshape to
// [batch, seq, heads, head_dim] behind a MatMul (+ bias Add) projection,
// Transposes, MatMul(Q, K^T), scaling / masking, Softmax, MatMul(., V), a
// Transpose and a Reshape merging the heads, and the output MatMul. GPT-2's
// Conv1D layers export as Gemm on a flattened input, and its c_attn computes
// q, k and v in one product that a Split takes apart: those are matched too.
// The pattern is found from each Softmax, every piece checked before anything
// changes; removing a head takes its columns of the q/k/v weights and biases
// (of each section of a packed one), its rows of the output weight, and the
// head count out of the Reshape shapes (constants, or constant elements of
// the Concat that builds them) and the Split sizes.
#include <algorithm>
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

// One element of a Reshape shape that holds a head count: a constant shape
// input of the Reshape, or one constant input of the Concat building it.
struct ShapeElement {
  Node* node = nullptr;  // Reshape or Concat
  size_t input = 0;
  size_t index = 0;  // element within that constant
};

struct Projection {
  Node* matmul = nullptr;  // MatMul(x, W [in, heads * head_dim]), or Gemm without transposes
  Node* bias = nullptr;    // Add(b, projection), the Gemm itself (its C), or null
  size_t bias_input = 0;   // which input of `bias` is b
  ShapeElement heads;      // heads at index 2 of [batch, seq, heads, head_dim]
  // A packed q|k|v product a Split takes apart: the Split, this section's
  // first column, the product's width, and that width in a Reshape before the Split.
  Node* split = nullptr;
  int64_t offset = 0, packed_width = 0;
  std::optional<ShapeElement> packed;
  // Head counts in repeat_kv's Expand (key/value heads) and the Reshape
  // merging its copies (query heads), where the exporter wrote them as constants.
  std::vector<ShapeElement> kv_repeats, q_repeats;
};

struct ExportedAttention {
  Projection q, k, v;
  Node* o = nullptr;  // MatMul(merged, W [heads * head_dim, out])
  std::optional<ShapeElement> merged;  // heads * head_dim at index 2 of the merge Reshape, when constant
  std::optional<ShapeElement> flat;    // heads * head_dim in a Reshape flattening the context for a Gemm
  int64_t heads = 0, kv_heads = 0, head_dim = 0;  // grouped-query: each key/value head serves heads / kv_heads
  int64_t group() const { return heads / kv_heads; }
};

class Finder {
 public:
  explicit Finder(Graph& g) : g_(g) {
    for (Node& n : g.nodes)
      for (const auto& out : n.outputs) producer_[out] = &n;
    for (Node& n : g.nodes)
      for (const auto& in : n.inputs) readers_[in].push_back(&n);
  }

  // The constant a value holds (an initializer or a Constant node's tensor).
  const Tensor* constant(const std::string& name) const {
    if (const NamedTensor* t = g_.find_initializer(name)) return &t->tensor;
    const Node* n = producer(name);
    if (!n || n->op_type != "Constant") return nullptr;
    for (const auto& a : n->attributes)
      if (a.name == "value" && a.tensors.size() == 1) return &a.tensors[0].tensor;
    return nullptr;
  }

  Node* producer(const std::string& name) const {
    auto it = producer_.find(name);
    return it == producer_.end() ? nullptr : it->second;
  }

  // The one reader of `name` that is an `op`, when every other reader only takes its Shape.
  Node* only_reader(const std::string& name, const char* op) const {
    auto it = readers_.find(name);
    if (it == readers_.end()) return nullptr;
    Node* found = nullptr;
    for (Node* r : it->second) {
      if (r->op_type == "Shape") continue;
      if (r->op_type != op || found) return nullptr;
      found = r;
    }
    return found;
  }

  // Element `index` of a Reshape's shape when it is a constant.
  std::optional<ShapeElement> shape_element(Node& reshape, size_t index, int64_t& value) const {
    if (reshape.inputs.size() < 2) return std::nullopt;
    if (const Tensor* t = constant(reshape.inputs[1])) {
      if (t->dtype() != DType::I64 || t->rank() != 1 || t->numel() <= static_cast<int64_t>(index)) return std::nullopt;
      value = t->data<int64_t>()[index];
      return ShapeElement{&reshape, 1, index};
    }
    Node* cat = producer(reshape.inputs[1]);
    if (!cat || cat->op_type != "Concat") return std::nullopt;
    size_t at = 0;  // Concat of 1-D pieces: find the piece holding `index`
    for (size_t i = 0; i < cat->inputs.size(); ++i) {
      const Tensor* t = constant(cat->inputs[i]);
      const int64_t len = t ? t->numel() : 1;  // a dynamic piece is one Unsqueezed dimension
      if (t && (t->dtype() != DType::I64 || t->rank() != 1)) return std::nullopt;
      if (index < at + static_cast<size_t>(len)) {
        if (!t) return std::nullopt;
        value = t->data<int64_t>()[index - at];
        return ShapeElement{cat, i, index - at};
      }
      at += static_cast<size_t>(len);
    }
    return std::nullopt;
  }

  enum class Trace { None, Found, Bad };

  static std::vector<int64_t> ints_attribute(const Node& n, const char* name) {
    for (const auto& a : n.attributes)
      if (a.name == name) return a.ints;
    return {};
  }

  // Back from `value` (head axis 1 of [batch, heads, seq, head_dim]) to the
  // Reshape that split the heads, through what keeps the head axis:
  // Transposes (the one next to the Reshape brings the heads from axis 2 to
  // 1, the rest keep them there), rotary embedding's Mul / Add / Neg and its
  // Slice and Concat along other axes, Cast, and repeat_kv's Unsqueeze,
  // Expand and merging Reshape, whose constant head counts are noted. A
  // branch into anything else (rotary tables gathered by position) is
  // taken to carry no heads; an operand whose heads come from two places is Bad.
  Trace trace(const std::string& value, Node*& split, Projection& p, int depth = 0) const {
    if (constant(value) || depth > 24) return Trace::None;
    Node* n = producer(value);
    if (!n || n->inputs.empty()) return Trace::None;
    const std::string& op = n->op_type;
    if (op == "Reshape") {
      Node* src = producer(n->inputs.at(0));
      const std::string from = src ? src->op_type : "";
      if (from == "MatMul" || from == "Add" || from == "Gemm" || from == "Split") {  // the head split itself
        if (split && split != n) return Trace::Bad;
        split = n;
        return Trace::Found;
      }
      if (from != "Expand") return Trace::None;
    }
    const bool elementwise = op == "Mul" || op == "Add" || op == "Sub" || op == "Div" || op == "Concat";
    const bool chain = op == "Reshape" || op == "Expand" || op == "Transpose" || op == "Unsqueeze" || op == "Slice" ||
                       op == "Neg" || op == "Cast";
    if (!elementwise && !chain) return Trace::None;
    Trace result = Trace::None;
    for (size_t i = 0; i < (chain ? 1 : n->inputs.size()); ++i) {
      const Trace t = trace(n->inputs[i], split, p, depth + 1);
      if (t == Trace::Bad) return Trace::Bad;
      if (t == Trace::Found) result = Trace::Found;
    }
    if (result != Trace::Found) return result;
    // This op carries the heads: it must keep them on axis 1 (axis 2 right after the split).
    int64_t heads = 0;
    if (op == "Reshape") {  // repeat_kv merging [batch, kv_heads, n_rep, seq, head_dim]
      if (auto e = shape_element(*n, 1, heads)) p.q_repeats.push_back(*e);
    } else if (op == "Expand") {
      if (auto e = shape_element(*n, 1, heads)) p.kv_repeats.push_back(*e);
    } else if (op == "Transpose") {
      const std::vector<int64_t> perm = ints_attribute(*n, "perm");
      const bool from_split = producer(n->inputs[0]) == split;
      if (perm.size() != 4 || perm[0] != 0 || perm[1] != (from_split ? 2 : 1)) return Trace::Bad;
    } else if (std::any_of(n->inputs.begin(), n->inputs.end(),
                           [&](const std::string& in) { return producer(in) == split; })) {
      return Trace::Bad;  // heads still on axis 2: only a Transpose may read the split
    } else if (op == "Unsqueeze") {  // repeat_kv's new axis after the heads
      const Tensor* axes = n->inputs.size() > 1 ? constant(n->inputs[1]) : nullptr;
      const std::vector<int64_t> a = axes && axes->dtype() == DType::I64
                                         ? std::vector<int64_t>(axes->data<int64_t>(), axes->data<int64_t>() + axes->numel())
                                         : ints_attribute(*n, "axes");
      if (a != std::vector<int64_t>{2}) return Trace::Bad;
    } else if (op == "Slice") {
      const Tensor* axes = n->inputs.size() > 3 ? constant(n->inputs[3]) : nullptr;
      if (!axes || axes->dtype() != DType::I64) return Trace::Bad;
      for (int64_t i = 0; i < axes->numel(); ++i)
        if (axes->data<int64_t>()[i] == 1 || axes->data<int64_t>()[i] == -3) return Trace::Bad;
    } else if (op == "Concat") {
      for (const auto& a : n->attributes)
        if (a.name == "axis" && (a.i == 1 || a.i == -3)) return Trace::Bad;
    }
    return Trace::Found;
  }

  // From a head-major operand of the score or context MatMul back to the
  // Reshape that split the heads (trace), and on to the projection.
  std::optional<Projection> projection(const std::string& value, int64_t& heads, int64_t& head_dim) const {
    Projection p;
    Node* n = nullptr;
    if (trace(value, n, p) != Trace::Found) return std::nullopt;
    auto h = shape_element(*n, 2, heads);
    auto d = shape_element(*n, 3, head_dim);
    if (!h || !d) return std::nullopt;
    p.heads = *h;
    Node* src = producer(n->inputs.at(0));
    if (src && src->op_type == "Split") {
      if (!packed_section(*src, n->inputs[0], heads * head_dim, p)) return std::nullopt;
      src = producer(src->inputs.at(0));
      if (src && src->op_type == "Reshape") {  // Conv1D's view back to [batch, seq, packed width]
        int64_t width = 0;
        if (auto e = shape_element(*src, 2, width)) {
          if (width != p.packed_width) return std::nullopt;
          p.packed = *e;
        }
        src = producer(src->inputs.at(0));
      }
    }
    if (src && src->op_type == "Gemm" && plain_gemm(*src)) {
      p.matmul = src;
      if (src->inputs.size() > 2 && !src->inputs[2].empty()) {
        if (!constant(src->inputs[2])) return std::nullopt;
        p.bias = src;
        p.bias_input = 2;
      }
      return p;
    }
    if (src && src->op_type == "Add" && src->inputs.size() == 2) {
      const int other = constant(src->inputs[0]) ? 1 : 0;
      if (!constant(src->inputs[1 - other])) return std::nullopt;
      p.bias = src;
      p.bias_input = static_cast<size_t>(1 - other);
      src = producer(src->inputs[static_cast<size_t>(other)]);
    }
    if (!src || src->op_type != "MatMul" || src->inputs.size() != 2 || !constant(src->inputs[1])) return std::nullopt;
    p.matmul = src;
    return p;
  }

  // Gemm(A, B, C) as Conv1D exports it: no transposes, B a constant [in, out].
  bool plain_gemm(const Node& n) const {
    for (const auto& a : n.attributes)
      if ((a.name == "transA" || a.name == "transB") && a.i != 0) return false;
    return n.inputs.size() >= 2 && constant(n.inputs[1]);
  }

  // `value`, `width` wide, is one of the three outputs of a Split along the
  // last axis of [batch, seq, q + k + v]: equal thirds, or the sizes it states
  // (grouped-query exports have q wider than k and v).
  bool packed_section(Node& split, const std::string& value, int64_t width, Projection& p) const {
    if (split.outputs.size() != 3) return false;
    int64_t axis = 0;
    std::vector<int64_t> sizes;
    for (const auto& a : split.attributes) {
      if (a.name == "axis") axis = a.i;
      if (a.name == "split") sizes = a.ints;
    }
    if (axis != 2 && axis != -1) return false;
    if (split.inputs.size() > 1 && !split.inputs[1].empty()) {
      const Tensor* t = constant(split.inputs[1]);
      if (!t || t->dtype() != DType::I64) return false;
      sizes.assign(t->data<int64_t>(), t->data<int64_t>() + t->numel());
    }
    const auto index = static_cast<size_t>(std::find(split.outputs.begin(), split.outputs.end(), value) - split.outputs.begin());
    if (sizes.empty()) sizes.assign(3, width);
    if (sizes.size() != 3 || index >= 3 || sizes[index] != width) return false;
    p.split = &split;
    p.offset = 0;
    for (size_t i = 0; i < index; ++i) p.offset += sizes[i];
    p.packed_width = sizes[0] + sizes[1] + sizes[2];
    return true;
  }

  std::optional<ExportedAttention> attention(Node& softmax) const {
    for (const auto& attr : softmax.attributes)
      if (attr.name == "axis" && attr.i != -1 && attr.i != 3) return std::nullopt;
    // Back from the Softmax through scaling and masking to MatMul(Q, K^T).
    Node* scores = producer(softmax.inputs.at(0));
    for (int depth = 0; scores && scores->op_type != "MatMul" && depth < 4; ++depth) {
      if (scores->op_type == "Where" && scores->inputs.size() == 3) {
        scores = producer(scores->inputs[1]);
      } else if (scores->op_type == "Cast") {
        scores = producer(scores->inputs.at(0));
      } else if ((scores->op_type == "Div" || scores->op_type == "Mul" || scores->op_type == "Add" ||
                  scores->op_type == "Sub") && scores->inputs.size() == 2) {
        Node* a = producer(scores->inputs[0]);
        scores = a && !constant(scores->inputs[0]) && a->op_type != "Constant" ? a : producer(scores->inputs[1]);
      } else {
        return std::nullopt;
      }
    }
    Node* context = only_reader(softmax.outputs.at(0), "MatMul");
    if (!scores || scores->op_type != "MatMul" || !context || context->inputs.at(0) != softmax.outputs[0])
      return std::nullopt;
    ExportedAttention a;
    int64_t hk = 0, dk = 0, hv = 0, dv = 0;
    auto q = projection(scores->inputs.at(0), a.heads, a.head_dim);
    auto k = projection(scores->inputs.at(1), hk, dk);
    auto v = projection(context->inputs.at(1), hv, dv);
    if (!q || !k || !v || hk != hv || hk <= 0 || a.heads % hk != 0 || dk != a.head_dim || dv != a.head_dim ||
        a.heads <= 0 || a.head_dim <= 0)
      return std::nullopt;
    a.kv_heads = hk;
    a.q = *q;
    a.k = *k;
    a.v = *v;
    // Forward: Transpose back to [batch, seq, heads, head_dim], Reshape merging the heads, output MatMul.
    Node* back = only_reader(context->outputs.at(0), "Transpose");
    Node* merge = back ? only_reader(back->outputs.at(0), "Reshape") : nullptr;
    if (!merge) return std::nullopt;
    std::string context_in = merge->outputs.at(0);
    a.o = only_reader(context_in, "MatMul");
    if (Node* flat = a.o ? nullptr : only_reader(context_in, "Reshape")) {  // Conv1D: view(-1, width), Gemm
      a.o = only_reader(flat->outputs.at(0), "Gemm");
      if (!a.o || !plain_gemm(*a.o)) return std::nullopt;
      context_in = flat->outputs[0];
      int64_t width = 0;
      if (auto e = shape_element(*flat, 1, width)) {
        if (width == a.heads * a.head_dim) a.flat = *e;
        else if (width != -1) return std::nullopt;
      }
    }
    if (!a.o || a.o->inputs.at(0) != context_in || !constant(a.o->inputs.at(1))) return std::nullopt;
    int64_t width = 0;
    if (auto m = shape_element(*merge, 2, width)) {
      if (width == a.heads * a.head_dim) a.merged = *m;
      else if (width != -1) return std::nullopt;
    }
    return a;
  }

 private:
  Graph& g_;
  std::map<std::string, Node*> producer_;
  std::map<std::string, std::vector<Node*>> readers_;
};

const Tensor& checked_weight(const Finder& f, const Node& n, size_t input, const char* role) {
  const Tensor* t = f.constant(n.inputs.at(input));
  if (!t || t->is_quantized() || t->dtype() != DType::F32)
    throw_usage("--structured heads: the " + std::string(role) + " weight '" + n.inputs.at(input) +
                "' is not an f32 constant (prune before quantizing)");
  return *t;
}

// The heads a projection holds: every query head, or the key/value heads.
int64_t heads_of(const ExportedAttention& a, const Projection* p) { return p == &a.q ? a.heads : a.kv_heads; }

void check_shapes(const Finder& f, const ExportedAttention& a) {
  const int64_t width = a.heads * a.head_dim;
  for (const Projection* p : {&a.q, &a.k, &a.v}) {
    const Tensor& w = checked_weight(f, *p->matmul, 1, "projection");
    const int64_t cols = p->split ? p->packed_width : heads_of(a, p) * a.head_dim;
    if (w.rank() != 2 || w.shape()[1] != cols)
      throw_usage("--structured heads: projection '" + p->matmul->inputs[1] + "' has shape " + shape_to_string(w.shape()) +
                  ", not [in, " + std::to_string(cols) + "] for " + std::to_string(a.heads) + " heads");
    if (p->bias) {
      const Tensor& b = checked_weight(f, *p->bias, p->bias_input, "bias");
      if (b.numel() != cols || b.shape().back() != cols)
        throw_usage("--structured heads: bias '" + p->bias->inputs[p->bias_input] + "' does not match its projection");
    }
  }
  const Tensor& wo = checked_weight(f, *a.o, 1, "output");
  if (wo.rank() != 2 || wo.shape()[0] != width)
    throw_usage("--structured heads: output weight '" + a.o->inputs[1] + "' has shape " + shape_to_string(wo.shape()) +
                ", not [" + std::to_string(width) + ", out]");
}

// The query heads that read key/value heads `keep`.
std::vector<int64_t> query_heads(const ExportedAttention& a, const std::vector<int64_t>& keep) {
  std::vector<int64_t> heads;
  for (int64_t g : keep)
    for (int64_t h = g * a.group(); h < (g + 1) * a.group(); ++h) heads.push_back(h);
  return heads;
}

// The columns of heads `heads` in a [.., heads * head_dim] value.
std::vector<int64_t> head_columns(const ExportedAttention& a, const std::vector<int64_t>& heads) {
  std::vector<int64_t> cols;
  for (int64_t h : heads)
    for (int64_t c = h * a.head_dim; c < (h + 1) * a.head_dim; ++c) cols.push_back(c);
  return cols;
}

// The columns of projection p that key/value heads `keep` own (with their query heads).
std::vector<int64_t> owned_columns(const ExportedAttention& a, const Projection* p, const std::vector<int64_t>& keep) {
  return head_columns(a, p == &a.q ? query_heads(a, keep) : keep);
}

// One score per key/value head with its query heads: magnitude sums the
// squared weights they own in the four matrices; wanda the energy their
// contexts feed into the output MatMul on calibration inputs,
// sum_c E[x_c^2] ||W_o[c, :]||^2.
std::vector<double> head_scores(const Finder& f, const ExportedAttention& a, const std::string& method,
                                const calib::InputStats* s) {
  const Tensor& wo = checked_weight(f, *a.o, 1, "output");
  const std::vector<float> energy = method == "wanda" ? importance_of(*s) : std::vector<float>{};
  std::vector<double> score(static_cast<size_t>(a.kv_heads), 0.0);
  for (int64_t g = 0; g < a.kv_heads; ++g) {
    double& sc = score[static_cast<size_t>(g)];
    sc = rows_energy(wo, head_columns(a, query_heads(a, {g})), method == "wanda" ? &energy : nullptr);
    if (method == "wanda") continue;
    for (const Projection* p : {&a.q, &a.k, &a.v})
      sc += columns_energy(checked_weight(f, *p->matmul, 1, "projection"), owned_columns(a, p, {g}), p->offset);
  }
  return score;
}

void set_shape_element(Graph& g, const Finder& f, const ShapeElement& e, int64_t value, const std::string& name,
                       std::set<std::string>& replaced) {
  replaced.insert(e.node->inputs.at(e.input));
  const Tensor* old = f.constant(e.node->inputs.at(e.input));
  std::vector<int64_t> values(old->data<int64_t>(), old->data<int64_t>() + old->numel());
  values[e.index] = value;
  // Always a new constant: exporters share shape constants between layers.
  g.initializers.push_back({name, Tensor::from_values<int64_t>(DType::I64, {static_cast<int64_t>(values.size())}, values), {}});
  e.node->inputs[e.input] = name;
}

// The distinct weights of the q/k/v projections (one when packed), each with
// its projections in column order.
std::map<Node*, std::vector<const Projection*>> by_product(const ExportedAttention& a) {
  std::map<Node*, std::vector<const Projection*>> products;
  for (const Projection* p : {&a.q, &a.k, &a.v}) products[p->matmul].push_back(p);
  for (auto& [product, group] : products)
    std::sort(group.begin(), group.end(), [](const Projection* x, const Projection* y) { return x->offset < y->offset; });
  return products;
}

// `keep`: the key/value heads kept, each with its query heads.
void shrink(Graph& g, const Finder& f, const ExportedAttention& a, const std::vector<int64_t>& keep, const std::string& prefix,
            std::set<std::string>& replaced) {
  const int64_t kept = static_cast<int64_t>(keep.size());
  for (const auto& [product, group] : by_product(a)) {
    std::vector<int64_t> product_cols;  // the kept columns of every section the product holds
    for (const Projection* p : group)
      for (int64_t c : owned_columns(a, p, keep)) product_cols.push_back(p->offset + c);
    const std::string name = product->inputs[1];
    replaced.insert(name);
    set_input(g, *product, 1, prefix + name, take_cols(checked_weight(f, *product, 1, "projection"), product_cols));
    const Projection& p = *group[0];
    if (p.bias) {
      const std::string& bias_name = p.bias->inputs[p.bias_input];
      replaced.insert(bias_name);
      const Tensor& b = checked_weight(f, *p.bias, p.bias_input, "bias");
      Tensor cut(DType::F32, {static_cast<int64_t>(product_cols.size())});
      for (size_t i = 0; i < product_cols.size(); ++i) cut.mutable_data<float>()[i] = b.data<float>()[product_cols[i]];
      set_input(g, *p.bias, p.bias_input, prefix + bias_name, cut);
    }
    if (p.split) {
      std::vector<int64_t> sizes;  // the sections in column order: q keeps its query heads, k and v their own
      for (const Projection* q : group) sizes.push_back(static_cast<int64_t>(owned_columns(a, q, keep).size()));
      if (p.split->inputs.size() > 1 && !p.split->inputs[1].empty()) {
        replaced.insert(p.split->inputs[1]);
        set_input(g, *p.split, 1, prefix + name + "/split_sizes", Tensor::from_values<int64_t>(DType::I64, {3}, sizes));
      }
      for (auto& attr : p.split->attributes)
        if (attr.name == "split") attr.ints = sizes;
      if (p.packed)
        set_shape_element(g, f, *p.packed, static_cast<int64_t>(product_cols.size()), prefix + name + "/packed_shape",
                          replaced);
    }
    for (const Projection* q : group) {
      const std::string tag = prefix + name + (q->split ? std::to_string(q->offset) : "");
      set_shape_element(g, f, q->heads, q == &a.q ? kept * a.group() : kept, tag + "/heads_shape", replaced);
      for (size_t i = 0; i < q->kv_repeats.size(); ++i)
        set_shape_element(g, f, q->kv_repeats[i], kept, tag + "/repeat_shape" + std::to_string(i), replaced);
      for (size_t i = 0; i < q->q_repeats.size(); ++i)
        set_shape_element(g, f, q->q_repeats[i], kept * a.group(), tag + "/repeated_shape" + std::to_string(i), replaced);
    }
  }
  const std::vector<int64_t> rows = head_columns(a, query_heads(a, keep));
  const int64_t width = static_cast<int64_t>(rows.size());
  replaced.insert(a.o->inputs[1]);
  set_input(g, *a.o, 1, prefix + a.o->inputs[1], take_rows(checked_weight(f, *a.o, 1, "output"), rows));
  if (a.merged) set_shape_element(g, f, *a.merged, width, prefix + a.o->inputs[1] + "/merged_shape", replaced);
  if (a.flat) set_shape_element(g, f, *a.flat, width, prefix + a.o->inputs[1] + "/flat_shape", replaced);
}

std::vector<std::string> projection_weights(const ExportedAttention& a) {
  std::vector<std::string> names;
  for (const auto& [product, group] : by_product(a)) names.push_back(product->inputs[1]);
  return names;
}

int64_t params_of(const Finder& f, const ExportedAttention& a) {
  int64_t n = f.constant(a.o->inputs[1])->numel();
  for (const auto& [product, group] : by_product(a)) {
    n += f.constant(product->inputs[1])->numel();
    if (const Projection& p = *group[0]; p.bias) n += f.constant(p.bias->inputs[p.bias_input])->numel();
  }
  return n;
}

}  // namespace

bool prune_exported_heads(Model& model, const PruneConfig& config, PruneReport& report) {
  Graph& g = model.graph;
  std::vector<ExportedAttention> layers;
  {
    const Finder f(g);
    for (Node& n : g.nodes)
      if (n.op_type == "Softmax" && n.domain.empty())
        if (auto a = f.attention(n)) {
          check_shapes(f, *a);
          layers.push_back(*a);
        }
  }
  if (layers.empty()) return false;
  std::vector<int64_t> rule_hits(config.rules.rules.size(), 0);
  std::set<std::string> replaced;
  for (size_t li = 0; li < layers.size(); ++li) {
    const Finder f(g);  // the graph changed with the layer before
    const ExportedAttention& a = layers[li];
    PrunedGroup row;
    row.producers = projection_weights(a);
    row.consumers = {a.o->inputs[1]};
    row.channels = row.kept = a.kv_heads;
    const double fraction =
        structured_fraction(config, a.q.matmul->inputs[1], a.q.matmul->name, a.q.matmul->op_type, "heads", row, rule_hits);
    row.params_before = row.params_after = params_of(f, a);
    const int64_t remove = std::min(a.kv_heads - 1, zeros_before(fraction, a.kv_heads));
    if (remove > 0) {
      const calib::InputStats* s =
          row.method == "wanda" ? &wanda_stats(config.stats, a.o->inputs[1], a.heads * a.head_dim) : nullptr;
      const std::vector<double> score = head_scores(f, a, row.method, s);
      const std::vector<int64_t> keep = keep_highest(score, remove);
      shrink(g, f, a, keep, "attention" + std::to_string(li) + "/pruned_heads/", replaced);
      row.kept = static_cast<int64_t>(keep.size());
      row.params_after = params_of(Finder(g), a);
    }
    report.groups.push_back(row);
  }
  finish_heads(g, replaced, config, rule_hits, report);
  return true;
}

}  // namespace slmopt::passes
