// Integer-only matrix work for NPUs and TFLite-Micro-style runtimes:
// every Conv becomes QLinearConv (int8 weights per output channel, int32
// bias, uint8 activations with calibrated scales and zero points) and every
// MatMul, and Gemm without transA, becomes QLinearMatMul, each between a
// QuantizeLinear of its input and a DequantizeLinear of its output. Ops
// between them stay as they are. Activation ranges come from calibration,
// through the chosen observer (calib/observers.hpp).
#pragma once

#include <string>
#include <vector>

#include "calib/observers.hpp"
#include "calib/stats.hpp"
#include "core/ir.hpp"
#include "core/rules.hpp"

namespace slmopt::passes {

struct Int8Layer {
  std::string node, op;
  float input_scale = 0, output_scale = 0;
  int input_zero = 0, output_zero = 0;
  std::string observer;  // whose ranges
  std::string rule;      // the rule that chose it, empty for the default
};

struct Int8Report {
  std::vector<Int8Layer> layers;
  std::vector<std::string> skipped;  // layers left float, with the reason
};

// Needs opset >= 10 and ranges for every converted layer's input and output;
// throws Error(Usage) when the statistics lack them. `rules` (first match on
// the weight name, node name and op) may set a layer's `observer`, or
// `keep: f32` to leave it float; unmatched layers use `observer`.
// Converting no layer is an error (Error(Usage)) unless `allow_empty`.
Model quantize_activations_int8(const Model& model, const calib::CalibStats& stats, Int8Report& report,
                                calib::ObserverKind observer = calib::ObserverKind::MinMax, const RuleSet& rules = {},
                                bool allow_empty = false);

}  // namespace slmopt::passes
