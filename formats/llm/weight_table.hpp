// The named tensors of a checkpoint, taken one by one by a graph builder, which
// states the shape it expects. Missing tensors, wrong shapes and tensors no
// builder used are errors that name the tensor: a checkpoint we half-read would
// compute something else without a word.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/ir.hpp"

namespace slmopt::llm {

class WeightTable {
 public:
  WeightTable(std::vector<NamedTensor> tensors, std::string file);

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // The tensor: matrices as stored (f32, f16 or bf16, memory-mapped), vectors
  // (norms, biases) widened to f32. Throws when missing or of another shape.
  Tensor take(const std::string& name, const std::vector<int64_t>& shape);
  // Drops a tensor the graph does not need (a tied lm_head copy, a mask buffer).
  void ignore(const std::string& name) { tensors_.erase(name); }
  // Throws naming the tensors nobody took.
  void expect_all_taken() const;
  const std::string& file() const { return file_; }

 private:
  std::map<std::string, Tensor> tensors_;
  std::string file_;
};

}  // namespace slmopt::llm
