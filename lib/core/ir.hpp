// The in-memory graph every format is read into and written from. Op semantics
// are ONNX's: op types, domains and attributes keep their ONNX names.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace slmopt {

// One dimension of a value's shape: a fixed size, a named symbol ("batch"), or unknown.
struct Dim {
  int64_t value = -1;  // >= 0 when fixed
  std::string param;   // symbol name when symbolic
  std::string denotation;
  bool is_fixed() const { return value >= 0; }
  bool operator==(const Dim&) const = default;
};

// A graph input, output or intermediate value with its (possibly partial) type.
struct ValueInfo {
  std::string name;
  std::optional<DType> dtype;             // element type of a tensor value; unset if unknown
  std::optional<std::vector<Dim>> shape;  // unset when the rank is unknown
  // Non-tensor types (sequence, map, optional, sparse) kept as serialized
  // onnx.TypeProto bytes so they survive a round trip; empty for tensors.
  std::string opaque_type;
  std::string denotation;
  std::string doc;
};

struct Graph;

// TypeProto(s) attributes (the `type` of Optional, for example) are kept as
// serialized onnx.TypeProto bytes in `s` / `strings`.
enum class AttrType {
  Float, Int, String, Tensor, Graph, Floats, Ints, Strings, Tensors, Graphs, TypeProto, TypeProtos
};

struct NamedTensor {
  std::string name;
  Tensor tensor;
  std::string doc;
};

struct Attribute {
  std::string name;
  AttrType type = AttrType::Int;
  float f = 0;
  int64_t i = 0;
  std::string s;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<NamedTensor> tensors;  // one element for AttrType::Tensor
  std::vector<Graph> graphs;    // one element for AttrType::Graph (If branches, Loop body)
  std::string ref_attr_name;    // set inside function bodies only
  std::string doc;

  // Defined in graph.cpp: Graph must be complete first.
  static Attribute integer(std::string attr_name, int64_t v);
  static Attribute integers(std::string attr_name, std::vector<int64_t> v);
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;                // "" is the default ONNX domain
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;
  std::vector<Attribute> attributes;
  std::string doc;

  const Attribute* find_attribute(const std::string& attr_name) const;
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;  // topological order
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  std::vector<ValueInfo> value_info;
  std::vector<NamedTensor> initializers;
  std::string doc;

  const NamedTensor* find_initializer(const std::string& tensor_name) const;
};

struct OpsetImport {
  std::string domain;
  int64_t version = 0;
  bool operator==(const OpsetImport&) const = default;
};

// Which pass ran with which options; appended by every pass, stored in outputs.
struct ProvenanceRecord {
  std::string pass;     // e.g. "quantize"
  std::string options;  // the options as given, e.g. "--bits *=4"
  std::string tool_version;
  bool operator==(const ProvenanceRecord&) const = default;
};

struct Model {
  Graph graph;
  std::vector<OpsetImport> opsets;
  int64_t ir_version = 8;
  std::string producer_name;
  std::string producer_version;
  std::string domain;
  int64_t model_version = 0;
  std::string doc;
  std::vector<std::pair<std::string, std::string>> metadata;  // in file order
  std::vector<ProvenanceRecord> provenance;
  std::string source_format;  // "onnx", "safetensors", ... (not stored in outputs)
  std::string source_path;    // the file it was read from, for messages (not stored in outputs)
};

// Calls fn(graph, depth) for g and every nested subgraph, parents first.
template <class G, class Fn>
void for_each_graph(G& g, Fn&& fn, int depth = 0) {
  fn(g, depth);
  for (auto& node : g.nodes)
    for (auto& attr : node.attributes)
      for (auto& sub : attr.graphs) for_each_graph(sub, fn, depth + 1);
}

// Throws Error(BadInput) unless `graph` is well formed as ONNX defines it:
// input names unique, each value produced once (by an input, an initializer or
// one node output), every value a node reads produced before it in `graph` or
// an enclosing graph, the same for every subgraph. Runs in O(n log n). The
// error names `file`.
void check_graph_structure(const Graph& graph, const std::string& file = {});

// "node 'conv1' (Conv)"; an unnamed node by its first output: "node (Conv) writing 'y'".
std::string describe(const Node& node);

// Appends the names `node` reads: its inputs and the outer-scope values its
// subgraphs read (an If branch may use a value an earlier node produced).
void append_values_read(const Node& node, std::vector<std::string>& reads);

// Reorders nodes so every value is produced before it is used (stable for graphs
// already in order). Names not produced in this graph are treated as coming from
// the graph's inputs, initializers or an outer scope. Throws on a cycle.
void sort_topologically(Graph& graph);

// Error(BadInput) "tensor 'w' appears twice" when two initializers share a
// name (a file's tensor table could say so; every later lookup would be ambiguous).
void require_unique_initializers(const Graph& graph, const std::string& file = {});

}  // namespace slmopt
