#include "passes/sparse_storage.hpp"

#include "core/weight_uses.hpp"
#include "passes/layer_weight.hpp"
#include "quant/quantize_weight.hpp"
#include "quant/scheme_families.hpp"

namespace slmopt::passes {

SparseStorageReport store_sparse_floats(Model& model, int64_t min_elements) {
  SparseStorageReport report;
  const auto uses = find_weight_uses(model.graph);
  QuantParams f32;
  f32.bits = 32;
  for (auto& init : model.graph.initializers) {
    const auto use = uses.find(init.name);
    const Tensor& w = init.tensor;
    if (use == uses.end() || w.dtype() != DType::F32 || w.is_quantized() || w.numel() < min_elements || w.rank() < 1 ||
        (use->second.input_axis_first && w.rank() != 2))
      continue;
    const quant::InputAxis axis = axis_of(use->second);
    std::vector<uint8_t> mask = quant::sparse_mask_if_smaller(w, axis, 32);
    if (mask.empty()) continue;
    const Tensor dense = quant::quantize_weight(w, axis, quant::kFloatScheme, f32, {});
    const Tensor sparse = quant::with_sparse_mask(dense, std::move(mask));
    ++report.tensors;
    report.bytes_before += w.nbytes();
    report.bytes_after += sparse.nbytes();
    init.tensor = sparse;
  }
  return report;
}

}  // namespace slmopt::passes
