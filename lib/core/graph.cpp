#include <algorithm>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "core/ir.hpp"

namespace slmopt {

Attribute Attribute::integer(std::string attr_name, int64_t v) {
  Attribute a;
  a.name = std::move(attr_name);
  a.type = AttrType::Int;
  a.i = v;
  return a;
}

Attribute Attribute::integers(std::string attr_name, std::vector<int64_t> v) {
  Attribute a;
  a.name = std::move(attr_name);
  a.type = AttrType::Ints;
  a.ints = std::move(v);
  return a;
}

const Attribute* Node::find_attribute(const std::string& attr_name) const {
  for (const auto& a : attributes)
    if (a.name == attr_name) return &a;
  return nullptr;
}

const NamedTensor* Graph::find_initializer(const std::string& tensor_name) const {
  for (const auto& t : initializers)
    if (t.name == tensor_name) return &t;
  return nullptr;
}

void append_values_read(const Node& node, std::vector<std::string>& reads) {
  for (const auto& in : node.inputs)
    if (!in.empty()) reads.push_back(in);
  for (const auto& attr : node.attributes)
    for (const auto& sub : attr.graphs)
      for (const auto& inner : sub.nodes) append_values_read(inner, reads);
}

void sort_topologically(Graph& graph) {
  const size_t n = graph.nodes.size();
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < n; ++i)
    for (const auto& out : graph.nodes[i].outputs)
      if (!out.empty()) producer.emplace(out, i);

  std::vector<std::vector<size_t>> users(n);
  std::vector<size_t> pending(n, 0);
  for (size_t i = 0; i < n; ++i) {
    std::vector<std::string> reads;
    append_values_read(graph.nodes[i], reads);
    std::sort(reads.begin(), reads.end());
    reads.erase(std::unique(reads.begin(), reads.end()), reads.end());
    for (const auto& name : reads) {
      auto it = producer.find(name);
      if (it == producer.end() || it->second == i) continue;
      users[it->second].push_back(i);
      ++pending[i];
    }
  }
  // Smallest original index first keeps an already sorted graph unchanged.
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < n; ++i)
    if (pending[i] == 0) ready.push(i);
  std::vector<size_t> order;
  order.reserve(n);
  while (!ready.empty()) {
    size_t i = ready.top();
    ready.pop();
    order.push_back(i);
    for (size_t u : users[i])
      if (--pending[u] == 0) ready.push(u);
  }
  if (order.size() != n)
    throw_bad_input("graph '" + graph.name + "' has a cycle among its nodes");
  std::vector<Node> sorted;
  sorted.reserve(n);
  for (size_t i : order) sorted.push_back(std::move(graph.nodes[i]));
  graph.nodes = std::move(sorted);
}

void require_unique_initializers(const Graph& graph, const std::string& file) {
  std::unordered_set<std::string_view> seen;
  for (const auto& init : graph.initializers)
    if (!seen.insert(init.name).second) throw_bad_input("tensor '" + init.name + "' appears twice", file);
}

}  // namespace slmopt
