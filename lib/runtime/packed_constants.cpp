#include "runtime/packed_constants.hpp"

#include <algorithm>

namespace slmopt::runtime {

PackedConstants::PackedConstants(const Model& model) {
  for_each_graph(model.graph, [&](const Graph& g, int) {
    for (const auto& init : g.initializers)
      if (init.tensor.dtype() == DType::F32 && !init.tensor.is_quantized() && init.tensor.numel() > 0) {
        const float* begin = init.tensor.data<float>();
        ranges_.emplace_back(begin, begin + init.tensor.numel());
      }
  });
  std::sort(ranges_.begin(), ranges_.end());
}

bool PackedConstants::inside_initializer(const MatrixView& v, int64_t rows, int64_t cols) const {
  if (rows <= 0 || cols <= 0 || v.row_stride < 0 || v.col_stride < 0) return false;
  const float* first = v.data;
  const float* last = v.data + (rows - 1) * v.row_stride + (cols - 1) * v.col_stride;
  // The last range that starts at or before `first`.
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), first,
                             [](const float* p, const auto& range) { return p < range.first; });
  if (it == ranges_.begin()) return false;
  --it;
  return last < it->second;
}

const PackedOperand* PackedConstants::find_or_pack(const MatrixView& v, Operand side, int64_t outer, int64_t k) {
  const bool is_a = side == Operand::A;
  if (!inside_initializer(v, is_a ? outer : k, is_a ? k : outer)) return nullptr;
  const auto key = std::make_tuple(v.data, v.row_stride, v.col_stride, side, outer, k);
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = packed_.find(key);
  if (found != packed_.end()) return found->second.get();
  const uint64_t bytes = static_cast<uint64_t>(packed_floats(sgemm_kernel(), side, outer, k)) * sizeof(float);
  if (packed_bytes_ + bytes > kBudgetBytes) return nullptr;
  auto packed = std::make_unique<PackedOperand>(pack_once(sgemm_kernel(), side, outer, k, v));
  packed_bytes_ += bytes;
  return packed_.emplace(key, std::move(packed)).first->second.get();
}

}  // namespace slmopt::runtime
