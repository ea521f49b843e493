#include "llm/graph_builder.hpp"

#include <cstdio>

#include "core/error.hpp"

namespace slmopt::llm {

void GraphBuilder::claim(const std::string& value_name) {
  if (!names_.insert(value_name).second) throw_internal("graph builder: name '" + value_name + "' used twice");
}

std::string GraphBuilder::add(const std::string& name, const std::string& op, std::vector<std::string> inputs,
                              std::vector<Attribute> attributes) {
  return add_to(name + "/out", name, op, std::move(inputs), std::move(attributes));
}

std::string GraphBuilder::add_to(const std::string& output, const std::string& name, const std::string& op,
                                 std::vector<std::string> inputs, std::vector<Attribute> attributes) {
  claim(output);
  graph_.nodes.push_back(Node{name, op, "", std::move(inputs), {output}, std::move(attributes), {}});
  return output;
}

std::vector<std::string> GraphBuilder::add_outputs(const std::string& name, const std::string& op,
                                                   std::vector<std::string> inputs, int count,
                                                   std::vector<Attribute> attributes) {
  std::vector<std::string> outputs;
  for (int i = 0; i < count; ++i) {
    outputs.push_back(name + "/out" + std::to_string(i));
    claim(outputs.back());
  }
  graph_.nodes.push_back(Node{name, op, "", std::move(inputs), outputs, std::move(attributes), {}});
  return outputs;
}

std::string GraphBuilder::initializer(const std::string& name, Tensor tensor) {
  claim(name);
  graph_.initializers.push_back(NamedTensor{name, std::move(tensor), {}});
  return name;
}

std::string GraphBuilder::constant(const std::string& name, Tensor tensor) {
  if (constants_.insert(name).second) initializer(name, std::move(tensor));
  return name;
}

std::string GraphBuilder::ints(std::vector<int64_t> values) {
  std::string name = "const/i64/";
  for (size_t i = 0; i < values.size(); ++i) name += (i ? "," : "") + std::to_string(values[i]);
  const auto n = static_cast<int64_t>(values.size());
  return constant(name, Tensor::from_values(DType::I64, {n}, values));
}

std::string GraphBuilder::int_scalar(int64_t value) {
  return constant("const/i64/scalar/" + std::to_string(value),
                  Tensor::from_values(DType::I64, {}, std::vector<int64_t>{value}));
}

std::string GraphBuilder::float_scalar(float value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", static_cast<double>(value));
  return constant(std::string("const/f32/scalar/") + text, Tensor::from_values(DType::F32, {}, std::vector<float>{value}));
}

}  // namespace slmopt::llm
