// What every weight pass (quantize, prune, lowrank) does with a layer's
// weight: view it as output rows along the input dimension, find the
// calibration statistics of the layer that reads it, and measure how far a
// changed weight moves the weight and the layer's output.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "calib/stats.hpp"
#include "core/tensor.hpp"
#include "core/rules.hpp"
#include "core/weight_uses.hpp"
#include "quant/quantize_weight.hpp"

namespace slmopt::passes {

quant::InputAxis axis_of(const WeightUse& use);

// The length of the weight's rows: its input dimension.
int64_t input_cols(const Tensor& w, const WeightUse& use);

// The inverse of quant::weight_rows: rows x cols back into w's layout.
Tensor weight_from_rows(const std::vector<float>& rows, const Tensor& like, quant::InputAxis axis);

// The statistics of the layer that reads `weight`, checked against its input
// width (Error(BadInput) when they disagree); null without data.
const calib::InputStats* layer_stats(const calib::CalibStats* stats, const std::string& weight, int64_t cols);
// The same for structured wanda, which cannot rank without them (a usage error names the weight).
const calib::InputStats& wanda_stats(const calib::CalibStats* stats, const std::string& weight, int64_t cols);

// Mean x^2 per input column, summed over the layer's groups.
std::vector<float> importance_of(const calib::InputStats& s);

// ||w - changed|| / ||w|| of two f32 tensors of the same shape.
double relative_error(const Tensor& w, const Tensor& changed);

// ||X (W - W')^T|| / ||X W^T|| on the calibration inputs (from X^T X); -1
// when the statistics hold no X^T X.
double output_error(const Tensor& w, const Tensor& changed, const WeightUse& use, const calib::InputStats& s);

// What a pass says when the model has no weight at all.
inline constexpr const char* kNoWeightFound =
    "found no weight: no MatMul, Gemm, Conv, ConvTranspose, LSTM, GRU, RNN or Gather reads a constant tensor";

// A weight pass that changed no weight did not do what it was asked (a
// build would ship the model unchanged): Error(Usage) with `what` and the
// rules given, or with `allow_empty` the same text as a warning.
void require_changes(int64_t changed, const std::string& what, const RuleSet& rules, bool allow_empty,
                     std::vector<std::string>& warnings);

}  // namespace slmopt::passes
