// Appends ONNX nodes and constants to a Graph under readable, unique names.
// The language-model builders write their graphs with it, so a graph reads
// like the module tree it came from ("model.layers.0.self_attn.q_proj").
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/ir.hpp"

namespace slmopt::llm {

class GraphBuilder {
 public:
  explicit GraphBuilder(Graph& graph) : graph_(graph) {}

  // Adds node `name` of `op`; returns its output, named "<name>/out".
  std::string add(const std::string& name, const std::string& op, std::vector<std::string> inputs,
                  std::vector<Attribute> attributes = {});
  // The same with the output named `output` (a graph output such as "logits").
  std::string add_to(const std::string& output, const std::string& name, const std::string& op,
                     std::vector<std::string> inputs, std::vector<Attribute> attributes = {});
  // A node with `count` outputs "<name>/out0", "<name>/out1", ...
  std::vector<std::string> add_outputs(const std::string& name, const std::string& op, std::vector<std::string> inputs,
                                       int count, std::vector<Attribute> attributes = {});

  std::string initializer(const std::string& name, Tensor tensor);
  // Constants are named by their value ("const/i64/0,4,2,-1,8") and stored
  // once, however many layers use them.
  std::string ints(std::vector<int64_t> values);  // int64 [n]
  std::string int_scalar(int64_t value);           // int64, rank 0
  std::string float_scalar(float value);           // f32, rank 0

 private:
  void claim(const std::string& value_name);
  std::string constant(const std::string& name, Tensor tensor);
  Graph& graph_;
  std::set<std::string> names_;
  std::set<std::string> constants_;
};

}  // namespace slmopt::llm
