// What a model holds and what its weights would cost: the numbers `inspect`
// prints. Parameters are the elements of the top-level initializers, as ONNX's
// Python API counts them; Constant nodes and subgraph initializers are reported
// apart so the totals stay comparable with other tools.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/ir.hpp"

namespace slmopt {

struct TensorStats {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  int64_t params = 0;
  uint64_t bytes = 0;
};

struct SizeEstimate {
  int bits_per_weight = 0;
  uint64_t bytes = 0;  // quantizable tensors at that width, the rest as stored
};

struct ModelStats {
  std::vector<std::pair<std::string, int64_t>> op_counts;  // top-level graph, most frequent first
  int64_t node_count = 0;
  std::vector<std::pair<std::string, int64_t>> subgraph_op_counts;
  int64_t subgraph_node_count = 0;
  std::vector<TensorStats> tensors;  // top-level initializers in file order
  int64_t params = 0;
  uint64_t bytes = 0;
  int64_t quantizable_params = 0;  // float tensors of rank >= 2
  int64_t constant_params = 0;     // Constant nodes' values, all graphs
  int64_t subgraph_params = 0;     // initializers of nested graphs
  std::vector<SizeEstimate> estimates;
};

// A float tensor of rank >= 2 is what weight quantization would shrink.
bool is_quantizable(const Tensor& t);

ModelStats compute_stats(const Model& model, const std::vector<int>& bit_widths = {8, 4, 2});

}  // namespace slmopt
