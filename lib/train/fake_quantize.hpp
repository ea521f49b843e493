// The fake quantizer of quantization-aware distillation: each trained weight
// quantized and dequantized exactly as the quantize pass will store it (the
// scheme its rule gives, the same rounding), so training sees the codes it
// will be written with.
#pragma once

#include "passes/quantize.hpp"
#include "train/distill.hpp"

namespace slmopt::train {

// Plans the quantization of `model` under `config` (which must not use
// calibration statistics: gptq and awq are refused, mse weighs every input
// alike) and returns the fake quantizer of w's weights under that plan.
FakeQuantize plan_fake_quantize(const Model& model, const LlamaWeights& w, const passes::QuantizeConfig& config);

}  // namespace slmopt::train
