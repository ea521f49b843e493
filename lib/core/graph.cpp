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

std::string describe(const Node& node) {
  if (!node.name.empty()) return "node '" + node.name + "' (" + node.op_type + ")";
  for (const auto& out : node.outputs)
    if (!out.empty()) return "node (" + node.op_type + ") writing '" + out + "'";
  return "node (" + node.op_type + ") without a name or outputs";
}

namespace {

// `scope` holds the names visible to this graph's nodes: the enclosing graphs'
// values, then this graph's own as they are produced (removed on the way out).
void check_structure(const Graph& graph, std::unordered_set<std::string>& scope) {
  std::unordered_set<std::string> own;  // produced in this graph
  std::vector<std::string> added;       // new to the scope (a subgraph may shadow an outer name, as exporters do)
  auto produce = [&](const std::string& name, const std::string& by) {
    if (name.empty()) return;
    if (!own.insert(name).second)
      throw_bad_input("graph '" + graph.name + "': value '" + name + "' is produced twice (again by " + by + ")");
    if (scope.insert(name).second) added.push_back(name);
  };
  for (const auto& v : graph.inputs) produce(v.name, "a graph input");
  for (const auto& init : graph.initializers)
    if (!own.count(init.name)) produce(init.name, "an initializer");  // an initializer may also be listed as an input
  for (const auto& node : graph.nodes) {
    for (const auto& in : node.inputs)
      if (!in.empty() && !scope.count(in))
        throw_bad_input("graph '" + graph.name + "': " + describe(node) + " reads '" + in +
                        "', which no input, initializer or earlier node produces");
    for (const auto& attr : node.attributes)
      for (const auto& sub : attr.graphs) check_structure(sub, scope);
    for (const auto& out : node.outputs) produce(out, describe(node));
  }
  for (const auto& name : added) scope.erase(name);
}

}  // namespace

void check_graph_structure(const Graph& graph, const std::string& file) {
  std::unordered_set<std::string> scope;
  try {
    check_structure(graph, scope);
  } catch (Error& e) {
    e.set_file_if_empty(file);
    throw;
  }
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
