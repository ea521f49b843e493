// Nodes that compute nothing new (Identity, inference Dropout, Cast to the
// same type, Reshape to the same shape or of a Reshape) and nodes whose
// values nobody reads.
#include <algorithm>
#include <optional>

#include "passes/simplify_rewrites.hpp"

namespace slmopt::passes::simplify_detail {
namespace {

enum class NoOp { None, Identity, Cast, Reshape };

bool all_zero(const Tensor& t) {
  const auto* bytes = static_cast<const unsigned char*>(t.bytes());
  return std::all_of(bytes, bytes + t.nbytes(), [](unsigned char b) { return b == 0; });
}

// The type inference gave `name`, or the one its constant or input declares.
std::optional<ValueInfo> type_of(const std::unordered_map<std::string, ValueInfo>& types, const ValueIndex& index,
                                 const std::string& name) {
  if (auto it = types.find(name); it != types.end()) return it->second;
  if (const Tensor* t = index.constant(name)) {
    ValueInfo v;
    v.dtype = t->dtype();
    v.shape.emplace();
    for (int64_t d : t->shape()) v.shape->push_back(Dim{d, {}, {}});
    return v;
  }
  return std::nullopt;
}

bool static_shape(const ValueInfo& v) {
  return v.shape && std::all_of(v.shape->begin(), v.shape->end(), [](const Dim& d) { return d.is_fixed(); });
}

class NoOpFinder {
 public:
  NoOpFinder(const Model& m, const ValueIndex& index) : model_(m), index_(index) {}

  NoOp kind(const Node& n) {
    if (!default_domain(n) || n.inputs.empty() || n.inputs[0].empty() || n.outputs.empty() || n.outputs[0].empty())
      return NoOp::None;
    if (n.op_type == "Identity" && n.outputs.size() == 1) return NoOp::Identity;
    if (n.op_type == "Dropout") return dropout_is_identity(n) ? NoOp::Identity : NoOp::None;
    if (n.op_type == "Cast" && n.outputs.size() == 1) {
      const Attribute* to = n.find_attribute("to");
      auto in = type_of(types(), index_, n.inputs[0]);
      return to && in && in->dtype && dtype_from_onnx(static_cast<int>(to->i)) == in->dtype ? NoOp::Cast : NoOp::None;
    }
    if (n.op_type == "Reshape" && n.outputs.size() == 1) {
      auto in = type_of(types(), index_, n.inputs[0]);
      auto out = type_of(types(), index_, n.outputs[0]);
      return in && out && static_shape(*in) && static_shape(*out) && *in->shape == *out->shape ? NoOp::Reshape
                                                                                                 : NoOp::None;
    }
    return NoOp::None;
  }

 private:
  // Inference mode: the mask unread, training_mode absent or a constant false.
  bool dropout_is_identity(const Node& n) const {
    for (size_t k = 1; k < n.outputs.size(); ++k)
      if (!n.outputs[k].empty() && index_.readers(n.outputs[k]) > 0) return false;
    if (n.inputs.size() < 3 || n.inputs[2].empty()) return true;
    const Tensor* training = index_.constant(n.inputs[2]);
    return training && all_zero(*training);
  }

  // Inference runs only when a Cast or Reshape asks.
  const std::unordered_map<std::string, ValueInfo>& types() {
    if (!types_) types_ = value_types(model_);
    return *types_;
  }

  const Model& model_;
  const ValueIndex& index_;
  std::optional<std::unordered_map<std::string, ValueInfo>> types_;
};

}  // namespace

void remove_no_ops(Model& model, SimplifyReport& report) {
  Graph& g = model.graph;
  const ValueIndex index(model);
  NoOpFinder finder(model, index);
  std::unordered_map<std::string, std::string> alias;  // a removed node's output -> the value it passed on
  auto resolve = [&](std::string name) {
    for (auto it = alias.find(name); it != alias.end(); it = alias.find(name)) name = it->second;
    return name;
  };
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& n = g.nodes[i];
    const NoOp kind = finder.kind(n);
    if (kind == NoOp::None) continue;
    const std::string in = resolve(n.inputs[0]), out = n.outputs[0];
    if (!index.is_output(out)) {
      alias[out] = in;
    } else {
      // It writes a graph output: its producer writes that name instead, when
      // the value it passes on is an intermediate one nobody else returns.
      auto p = index.producer.find(in);
      if (in != n.inputs[0] || p == index.producer.end() || removed[p->second] || index.is_output(in)) continue;
      for (auto& o : g.nodes[p->second].outputs)
        if (o == in) o = out;
      alias[in] = out;
    }
    removed[i] = true;
    (kind == NoOp::Identity ? report.identities : kind == NoOp::Cast ? report.casts : report.reshapes) += 1;
  }
  if (alias.empty()) return;
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
  for_each_graph(g, [&](Graph& sub, int depth) {
    for (auto& n : sub.nodes)
      for (auto& i : n.inputs)
        if (!i.empty()) i = resolve(i);
    if (depth > 0)
      for (auto& v : sub.outputs) v.name = resolve(v.name);
  });
}

int64_t merge_reshapes(Model& model) {
  Graph& g = model.graph;
  const ValueIndex index(model);
  int64_t merged = 0;
  for (auto& n : g.nodes) {
    if (!default_domain(n) || n.op_type != "Reshape" || n.inputs.size() < 2) continue;
    auto p = index.producer.find(n.inputs[0]);
    if (p == index.producer.end()) continue;
    const Node& inner = g.nodes[p->second];
    if (!default_domain(inner) || inner.op_type != "Reshape" || inner.inputs.empty() ||
        index.readers(n.inputs[0]) != 1 || index.is_output(n.inputs[0]))
      continue;
    // A 0 copies a dim of the Reshape's own input, which the merge would change.
    const Tensor* shape = index.constant(n.inputs[1]);
    const Attribute* allowzero = n.find_attribute("allowzero");
    if (!shape || shape->dtype() != DType::I64) continue;
    const int64_t* dims = shape->data<int64_t>();
    if (!(allowzero && allowzero->i) && std::find(dims, dims + shape->numel(), 0) != dims + shape->numel()) continue;
    n.inputs[0] = inner.inputs[0];
    ++merged;
  }
  return merged;
}

int64_t remove_dead_nodes(Model& model) {
  Graph& g = model.graph;
  std::unordered_set<std::string> live;
  for (const auto& v : g.outputs) live.insert(v.name);
  std::vector<bool> keep(g.nodes.size(), false);
  std::vector<std::string> reads;
  for (size_t i = g.nodes.size(); i-- > 0;) {
    const Node& n = g.nodes[i];
    keep[i] = std::any_of(n.outputs.begin(), n.outputs.end(), [&](const std::string& o) { return !o.empty() && live.count(o); });
    if (!keep[i]) continue;
    reads.clear();
    append_values_read(n, reads);
    live.insert(reads.begin(), reads.end());
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (keep[i]) kept.push_back(std::move(g.nodes[i]));
  const auto removed = static_cast<int64_t>(g.nodes.size() - kept.size());
  g.nodes = std::move(kept);
  return removed;
}

}  // namespace slmopt::passes::simplify_detail
