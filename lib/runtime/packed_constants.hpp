// Constant operands of the sgemm packed once per session (a convolution's or
// a Linear layer's weights) instead of on every run. The model's initializers
// outlive the session and do not change while it runs, so a packed copy found
// by where the operand lies stays valid. Each costs a copy of the weight
// (rounded up to whole panels); past a budget, operands are packed per run again.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <utility>
#include <vector>

#include "core/ir.hpp"
#include "runtime/kernels/sgemm.hpp"

namespace slmopt::runtime {

class PackedConstants {
 public:
  static constexpr uint64_t kBudgetBytes = uint64_t{256} << 20;

  // Records where the float initializers of every graph of `model` lie.
  explicit PackedConstants(const Model& model);

  // `v` (A: outer x k, B: k x outer) packed for the chosen sgemm kernel, or
  // nullptr when it is not entirely inside one initializer or the budget is
  // spent. Safe to call from several threads.
  const PackedOperand* find_or_pack(const MatrixView& v, Operand side, int64_t outer, int64_t k);

 private:
  bool inside_initializer(const MatrixView& v, int64_t rows, int64_t cols) const;

  std::vector<std::pair<const float*, const float*>> ranges_;  // [begin, end), sorted
  std::mutex mutex_;
  std::map<std::tuple<const float*, int64_t, int64_t, Operand, int64_t, int64_t>, std::unique_ptr<PackedOperand>> packed_;
  uint64_t packed_bytes_ = 0;
};

}  // namespace slmopt::runtime
