// The fake quantizer of quantization-aware distillation: each trained weight
// quantized and dequantized exactly as the quantize pass will store it (the
// scheme its rule gives, the same rounding), so training sees the codes it
// will be written with.
#pragma once

#include "passes/quantize.hpp"
#include "train/distill.hpp"

namespace slmopt::train {

struct FakeQuantPlan {
  FakeQuantize fake_quantize;
  // DistillOptions::freeze_at for `steps` steps: trellis-coded weights (tcq),
  // whose codes are searched together, do not train through rounding (a
  // small move of one weight can reroute the codes of its neighbours), so
  // they stay float and freeze layer by layer, the first layer first, each
  // stage an equal share of the steps; the later layers and the weights of
  // other schemes train on around them. Empty when there are none.
  std::vector<int64_t> freeze_at;
};

// Plans the quantization of `model` under `config` (which must not use
// calibration statistics: gptq and awq are refused, mse weighs every input
// alike): the fake quantizer of w's weights under that plan, and when each
// freezes over `steps` steps of training.
FakeQuantPlan plan_fake_quantize(const Model& model, const LlamaWeights& w, const passes::QuantizeConfig& config,
                                 int64_t steps);

}  // namespace slmopt::train
