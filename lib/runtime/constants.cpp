#include "runtime/constants.hpp"

#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "core/error.hpp"
#include "runtime/kernel_registry.hpp"

namespace slmopt::runtime {
namespace {

bool default_domain(const Node& n) { return n.domain.empty() || n.domain == "ai.onnx"; }

// Ops whose result is a rearrangement (or a type change) of one constant:
// computing them once is exact and costs no more than their source.
bool is_view(const Node& n) {
  static const std::set<std::string> ops = {"Cast", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten"};
  return default_domain(n) && ops.count(n.op_type) > 0;
}

bool has_subgraph(const Node& n) {
  for (const auto& a : n.attributes)
    if (!a.graphs.empty()) return true;
  return false;
}

// Views of a source with other readers are computed only when this small:
// a shape constant, never a second copy of a weight.
constexpr int64_t kSmallView = 1024;

class Normalizer {
 public:
  explicit Normalizer(Model& m) : model_(m), top_(m.graph) {
    for (const auto& o : m.opsets)
      if (o.domain.empty() || o.domain == "ai.onnx") opset_ = static_cast<int>(o.version);
    overridable_inputs_ = m.ir_version >= 4;
    for_each_graph(top_, [&](const Graph& g, int) {
      for (const auto& v : g.inputs) ++defs_[v.name];
      for (const auto& t : g.initializers) ++defs_[t.name];
      for (const auto& n : g.nodes)
        for (const auto& o : n.outputs)
          if (!o.empty()) ++defs_[o];
      for (const auto& n : g.nodes)
        for (const auto& i : n.inputs)
          if (!i.empty()) ++reads_[i];
      for (const auto& v : g.outputs) returned_.insert(v.name);
    });
    for (const auto& v : top_.inputs) top_inputs_.insert(v.name);
    for (size_t i = 0; i < top_.initializers.size(); ++i) index_[top_.initializers[i].name] = i;
  }

  ConstantsReport run() {
    for_each_graph(top_, [&](Graph& g, int depth) {
      if (depth > 0) hoist_initializers(g);
      fold_nodes(g, depth);
    });
    report_.unused_removed = remove_unused_initializers(model_, folded_sources_);
    return report_;
  }

 private:
  // A constant every reader may rely on: an initializer of the main graph
  // that the caller cannot replace by feeding an input of that name.
  const Tensor* constant(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) return nullptr;
    if (overridable_inputs_ && top_inputs_.count(name)) return nullptr;
    return &top_.initializers[it->second].tensor;
  }

  std::string unique_name(const std::string& base) {
    std::string name = base;
    for (int k = 1; defs_.count(name) && defs_[name] > 0; ++k) name = base + "_" + std::to_string(k);
    return name;
  }

  // `from` becomes `to` wherever `g` and its bodies read or return it.
  static void rename_in(Graph& g, const std::string& from, const std::string& to) {
    for_each_graph(g, [&](Graph& sub, int) {
      for (auto& n : sub.nodes)
        for (auto& i : n.inputs)
          if (i == from) i = to;
      for (auto& v : sub.outputs)
        if (v.name == from) v.name = to;
    });
  }

  // Makes `value`, defined in `owner` (at `depth`) as `name`, an initializer
  // of the main graph. A body's name that another scope also defines (the
  // two branches of an If often share names) is renamed within the body.
  void hoist(Graph& owner, int depth, const std::string& name, Tensor value) {
    std::string final_name = name;
    if (depth > 0 && defs_[name] > 1) {
      --defs_[name];
      final_name = unique_name(name);
      ++defs_[final_name];
      rename_in(owner, name, final_name);
      reads_[final_name] = reads_[name];
    }
    if (model_.ir_version < 4) {
      // Before IR 4 every initializer is also listed as a graph input.
      top_.inputs.push_back(ValueInfo{final_name, value.dtype(), std::vector<Dim>{}, {}, {}, {}});
      auto& shape = *top_.inputs.back().shape;
      for (int64_t d : value.shape()) shape.push_back(Dim{d, {}, {}});
      top_inputs_.insert(final_name);
    }
    index_[final_name] = top_.initializers.size();
    top_.initializers.push_back({final_name, std::move(value), {}});
  }

  void hoist_initializers(Graph& g) {
    std::unordered_set<std::string> inputs;
    for (const auto& v : g.inputs) inputs.insert(v.name);
    std::vector<NamedTensor> kept;
    for (auto& t : g.initializers) {
      if (inputs.count(t.name)) {  // a default the body's caller may override
        kept.push_back(std::move(t));
        continue;
      }
      hoist(g, 1, t.name, std::move(t.tensor));
      ++report_.subgraph_initializers;
    }
    g.initializers = std::move(kept);
  }

  std::optional<Tensor> evaluate(const Node& n, const std::vector<const Tensor*>& inputs) const {
    const KernelEntry* kernel = KernelRegistry::instance().entry(n.domain, n.op_type);
    if (!kernel || n.outputs.size() != 1) return std::nullopt;
    OpContext ctx{n, opset_, inputs, {}, nullptr, nullptr};
    ctx.outputs.resize(1);
    try {
      kernel->fn(ctx);
    } catch (const Error&) {
      return std::nullopt;  // left to the runtime, which reports it with the inputs it really gets
    }
    return std::move(ctx.outputs[0]);
  }

  // Constant nodes, views of constants and Identity of a constant, in
  // order, so a chain (Constant -> Transpose -> Reshape) folds in one pass.
  void fold_nodes(Graph& g, int depth) {
    std::unordered_set<std::string> own_outputs;
    for (const auto& v : g.outputs) own_outputs.insert(v.name);
    std::vector<Node> kept;
    kept.reserve(g.nodes.size());
    for (auto& n : g.nodes) {
      for (auto& i : n.inputs)
        if (auto a = alias_.find(i); a != alias_.end()) i = a->second;
      if (!try_fold(g, depth, n, own_outputs)) kept.push_back(std::move(n));
    }
    g.nodes = std::move(kept);
  }

  bool try_fold(Graph& g, int depth, const Node& n, const std::unordered_set<std::string>& own_outputs) {
    if (!default_domain(n) || n.outputs.size() != 1 || n.outputs[0].empty() || has_subgraph(n)) return false;
    const std::string& out = n.outputs[0];
    // A body that returns a constant keeps it: its output names its own value.
    if (depth > 0 && own_outputs.count(out)) return false;
    if (n.op_type == "Constant") {
      auto value = evaluate(n, {});
      if (!value) return false;
      hoist(g, depth, out, std::move(*value));
      ++report_.constant_nodes;
      return true;
    }
    std::vector<const Tensor*> inputs;
    for (const auto& i : n.inputs) {
      const Tensor* t = i.empty() ? nullptr : constant(i);
      if (!i.empty() && (!t || t->is_quantized())) return false;
      inputs.push_back(t);
    }
    if (inputs.empty() || !inputs[0]) return false;
    if (n.op_type == "Identity") {
      if (returned_.count(out) || defs_[out] != 1) return false;
      alias_[out] = n.inputs[0];
      folded_sources_.insert(n.inputs[0]);
      reads_[n.inputs[0]] += reads_[out] - 1;
      ++report_.identities;
      return true;
    }
    if (!is_view(n)) return false;
    if (reads_[n.inputs[0]] > 1 && inputs[0]->numel() > kSmallView) return false;
    auto value = evaluate(n, inputs);
    if (!value) return false;
    for (const auto& i : n.inputs)
      if (!i.empty()) {
        --reads_[i];
        folded_sources_.insert(i);
      }
    hoist(g, depth, out, std::move(*value));
    ++report_.folded_views;
    return true;
  }

  Model& model_;
  Graph& top_;
  int opset_ = 0;
  bool overridable_inputs_ = true;
  std::unordered_map<std::string, int> defs_, reads_;
  std::unordered_set<std::string> returned_, top_inputs_;
  std::unordered_map<std::string, size_t> index_;
  std::unordered_map<std::string, std::string> alias_;
  std::set<std::string> folded_sources_;
  ConstantsReport report_;
};

}  // namespace

std::vector<std::string> ConstantsReport::lines() const {
  std::vector<std::string> out;
  auto add = [&](int64_t n, const std::string& what) {
    if (n > 0) out.push_back(std::to_string(n) + " " + what);
  };
  add(constant_nodes, "Constant nodes -> initializers");
  add(subgraph_initializers, "initializers moved out of If/Loop/Scan bodies");
  add(folded_views, "views of constants (Cast, Transpose, Reshape, ...) computed once");
  add(identities, "Identity nodes of constants bypassed");
  add(unused_removed, "unused initializers removed");
  return out;
}

ConstantsReport constants_to_initializers(Model& model) { return Normalizer(model).run(); }

bool computable_once(const Node& n) {
  static const std::set<std::string> ops = {"RandomNormal",     "RandomUniform",    "RandomNormalLike",
                                            "RandomUniformLike", "Multinomial",      "Bernoulli",
                                            "QuantizeLinear",   "DequantizeLinear", "DynamicQuantizeLinear",
                                            "QLinearConv",      "QLinearMatMul"};
  return default_domain(n) && !ops.count(n.op_type) && !has_subgraph(n);
}

int64_t remove_unused_initializers(Model& model, const std::set<std::string>& candidates) {
  if (candidates.empty()) return 0;
  Graph& top = model.graph;
  std::unordered_set<std::string> read;
  for_each_graph(top, [&](const Graph& g, int) {
    for (const auto& n : g.nodes) read.insert(n.inputs.begin(), n.inputs.end());
    for (const auto& v : g.outputs) read.insert(v.name);
  });
  std::unordered_set<std::string> inputs;
  for (const auto& v : top.inputs) inputs.insert(v.name);
  const bool overridable = model.ir_version >= 4;
  std::unordered_set<std::string> removed;
  std::erase_if(top.initializers, [&](const NamedTensor& t) {
    if (!candidates.count(t.name) || read.count(t.name) || (overridable && inputs.count(t.name))) return false;
    removed.insert(t.name);
    return true;
  });
  // Before IR 4 each initializer is also an input; its entry goes with it.
  if (!overridable) std::erase_if(top.inputs, [&](const ValueInfo& v) { return removed.count(v.name) > 0; });
  return static_cast<int64_t>(removed.size());
}

}  // namespace slmopt::runtime
