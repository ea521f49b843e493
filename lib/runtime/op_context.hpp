// What a kernel sees: its node, its input tensors and the outputs it must fill.
// Kernels validate their inputs first (throwing Error naming the node) and then
// compute; they never read past a tensor they were not given.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/ir.hpp"

namespace slmopt::runtime {

class Session;
struct Scope;

struct OpContext {
  const Node& node;
  int opset;                          // opset version of the node's domain
  std::vector<const Tensor*> inputs;  // nullptr for an omitted optional input
  std::vector<Tensor> outputs;        // one per node output, filled by the kernel
  const Session* session = nullptr;   // for control flow (If, Loop)
  const Scope* scope = nullptr;       // values visible to subgraphs run by this node
  // Working memory the kernel needed beyond its inputs and outputs (im2col
  // columns, dequantized weight rows); kernels report it, the session keeps the peak.
  uint64_t scratch_bytes = 0;

  size_t input_count() const { return inputs.size(); }
  bool has_input(size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
  // The i-th input; throws when it is missing.
  const Tensor& input(size_t i) const;
  Tensor& output(size_t i) { return outputs.at(i); }
  bool wants_output(size_t i) const { return i < node.outputs.size() && !node.outputs[i].empty(); }

  int64_t attr_int(const std::string& name, int64_t fallback) const;
  float attr_float(const std::string& name, float fallback) const;
  std::string attr_string(const std::string& name, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const std::string& name, std::vector<int64_t> fallback = {}) const;
  std::vector<float> attr_floats(const std::string& name) const;
  const Attribute* attr(const std::string& name) const { return node.find_attribute(name); }

  [[noreturn]] void fail(const std::string& message) const;
};

// Integer values of a 0-D or 1-D int32/int64 tensor (shapes, axes, indices).
std::vector<int64_t> int_values(const Tensor& t);
// A float scalar from any numeric tensor's first element.
double scalar_value(const Tensor& t);

}  // namespace slmopt::runtime
