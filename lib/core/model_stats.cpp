#include "core/model_stats.hpp"

#include <algorithm>
#include <map>

namespace slmopt {

bool is_quantizable(const Tensor& t) { return is_float(t.dtype()) && t.rank() >= 2; }

namespace {
std::vector<std::pair<std::string, int64_t>> sorted_counts(const std::map<std::string, int64_t>& m) {
  std::vector<std::pair<std::string, int64_t>> v(m.begin(), m.end());
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return v;
}
std::string op_key(const Node& n) { return n.domain.empty() ? n.op_type : n.domain + "." + n.op_type; }
}  // namespace

ModelStats compute_stats(const Model& model, const std::vector<int>& bit_widths) {
  ModelStats s;
  std::map<std::string, int64_t> top, nested;
  for_each_graph(model.graph, [&](const Graph& g, int depth) {
    for (const auto& n : g.nodes) {
      (depth == 0 ? top : nested)[op_key(n)]++;
      (depth == 0 ? s.node_count : s.subgraph_node_count)++;
      if (n.op_type == "Constant" && n.domain.empty())
        for (const auto& a : n.attributes)
          for (const auto& t : a.tensors) s.constant_params += t.tensor.numel();
    }
    if (depth > 0)
      for (const auto& t : g.initializers) s.subgraph_params += t.tensor.numel();
  });
  s.op_counts = sorted_counts(top);
  s.subgraph_op_counts = sorted_counts(nested);

  for (const auto& t : model.graph.initializers) {
    s.tensors.push_back({t.name, t.tensor.dtype(), t.tensor.shape(), t.tensor.numel(), t.tensor.nbytes()});
    s.params += t.tensor.numel();
    s.bytes += t.tensor.nbytes();
    if (is_quantizable(t.tensor)) s.quantizable_params += t.tensor.numel();
  }
  for (int bits : bit_widths) {
    uint64_t total = 0;
    for (const auto& t : model.graph.initializers)
      total += is_quantizable(t.tensor)
                   ? (static_cast<uint64_t>(t.tensor.numel()) * static_cast<uint64_t>(bits) + 7) / 8
                   : t.tensor.nbytes();
    s.estimates.push_back({bits, total});
  }
  return s;
}

}  // namespace slmopt
