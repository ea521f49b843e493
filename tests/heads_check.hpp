// The check every head-pruning test makes (exported, fused and ONNX
// Attention graphs alike): two attention layers of four query heads, half the
// key/value heads pruned by magnitude and by wanda, must equal the original
// whose output projections read nothing from the removed heads, lose exactly
// their parameters, and at 0 % change nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "calib/dataset.hpp"
#include "core/ir.hpp"

namespace slmopt::test {

struct HeadsLayout {
  bool packed = false;   // one q|k|v weight per layer, not three
  int64_t kv_heads = 4;  // key/value heads for the four query heads
  bool biases = true;    // q, k and v have biases
};

// `inputs(seed)` gives a calibration sample; `also` runs on each pruned model.
void check_heads_pruned(const Model& model, const std::function<calib::Sample(uint32_t)>& inputs, HeadsLayout layout,
                        const std::function<void(const Model&)>& also = {});

}  // namespace slmopt::test
