// Sparse storage of pruned float weights: every f32 weight that MatMul, Gemm,
// Conv or Gather reads and whose exact zeros make it smaller that way becomes
// a "float" scheme tensor with a mask (quant/sparse.hpp), f32 values of the
// kept weights only. `pack` runs it so a pruned model's blob really is
// smaller; the runtime reads the result like any quantized weight.
#pragma once

#include <cstdint>

#include "core/ir.hpp"

namespace slmopt::passes {

struct SparseStorageReport {
  int64_t tensors = 0;  // stored sparse
  uint64_t bytes_before = 0, bytes_after = 0;  // of those tensors
};

// Weights below min_elements stay dense (a mask and a part table cost more
// than they save there).
SparseStorageReport store_sparse_floats(Model& model, int64_t min_elements = 1024);

}  // namespace slmopt::passes
