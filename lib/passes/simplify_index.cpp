#include "onnx/shape_inference.hpp"
#include "passes/simplify_rewrites.hpp"

namespace slmopt::passes::simplify_detail {

bool default_domain(const Node& n) { return n.domain.empty() || n.domain == "ai.onnx"; }

std::unordered_map<std::string, ValueInfo> value_types(const Model& model) {
  return onnx_format::infer_value_types(model);
}

ValueIndex::ValueIndex(const Model& m) : model(m) {
  for_each_graph(m.graph, [&](const Graph& g, int) {
    for (const auto& v : g.inputs) names.insert(v.name);
    for (const auto& t : g.initializers) names.insert(t.name);
    for (const auto& n : g.nodes) {
      for (const auto& i : n.inputs)
        if (!i.empty()) ++read_count[i];
      for (const auto& o : n.outputs) names.insert(o);
    }
    for (const auto& v : g.outputs) ++read_count[v.name];
  });
  for (const auto& v : m.graph.outputs) outputs.insert(v.name);
  for (size_t i = 0; i < m.graph.nodes.size(); ++i)
    for (const auto& o : m.graph.nodes[i].outputs)
      if (!o.empty()) producer[o] = i;
  std::unordered_set<std::string> overridable;
  if (m.ir_version >= 4)
    for (const auto& v : m.graph.inputs) overridable.insert(v.name);
  for (size_t i = 0; i < m.graph.initializers.size(); ++i) {
    const auto& t = m.graph.initializers[i];
    if (!overridable.count(t.name) && !t.tensor.is_quantized()) constants[t.name] = i;
  }
}

const Tensor* ValueIndex::constant(const std::string& name) const {
  auto it = constants.find(name);
  return it == constants.end() ? nullptr : &model.graph.initializers[it->second].tensor;
}

int ValueIndex::readers(const std::string& name) const {
  auto it = read_count.find(name);
  return it == read_count.end() ? 0 : it->second;
}

std::string ValueIndex::fresh_name(const std::string& base) {
  std::string name = base;
  for (int k = 1; names.count(name); ++k) name = base + "_" + std::to_string(k);
  names.insert(name);
  return name;
}

}  // namespace slmopt::passes::simplify_detail
