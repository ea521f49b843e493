// Activation-aware weight scaling (AWQ, Lin et al., 2023). Input channels
// that carry large activations matter more; scaling them up in the weight
// (W diag(s)) and down in the activation (x / s) leaves the layer's output
// unchanged but spends the quantization grid where it counts. For each
// activation, s = mean|x|^alpha with alpha searched on a grid, scored by the
// layer's output error on the calibration inputs (from X^T X, so no samples
// are kept). Layers reading the same activation share one s.
//
// The 1/s goes where the graph allows it: into the producing MatMul/Gemm/
// Conv's output channels (through Relu/LeakyRelu, which commute with
// positive scales) or a LayerNormalization's scale and bias; otherwise an
// explicit Mul node divides the activation for these layers only.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "calib/stats.hpp"
#include "core/ir.hpp"
#include "core/weight_uses.hpp"
#include "quant/spec.hpp"

namespace slmopt::passes {

struct AwqTarget {
  std::string weight;
  WeightUse use;
  quant::QuantSpec spec;
};

struct AwqChoice {
  double alpha = 0;
  std::string placed;  // where 1/s went: "folded into <node>", "Mul node <name>", or why AWQ did not apply
  bool applied = false;
};

// Rewrites `model` (weights scaled, activations divided) and `stats` (the
// scaled layers' input statistics, re-keyed where a Mul was inserted) in place.
std::map<std::string, AwqChoice> apply_awq(Model& model, calib::CalibStats& stats, const std::vector<AwqTarget>& targets);

}  // namespace slmopt::passes
