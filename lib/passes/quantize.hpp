// The quantize pass: every weight that MatMul, Gemm, Conv or Gather reads is
// matched against the rules (first match wins), quantized with the scheme the
// rule (or the default) names, and reported with its bits per weight and
// error. Small tensors (biases, norms) stay float unless a rule names them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "calib/stats.hpp"
#include "core/ir.hpp"
#include "core/rules.hpp"

namespace slmopt::passes {

struct QuantizeConfig {
  RuleSet rules;
  std::string default_spec = "q4";  // scheme for weights no rule matches
  int64_t min_elements = 1024;      // smaller weights stay float unless a rule matches them
  std::string algorithm = "mse";    // default algorithm: rtn, mse, gptq or awq
  // Store a weight whose exact zeros (pruning) make it smaller that way
  // sparse: codes of the kept weights and a bitmap (quant/sparse.hpp).
  bool sparse = true;
  // Calibration statistics of the model (calib/collector.hpp). With them, mse
  // weighs each input channel by its mean x^2; gptq and awq need them.
  const calib::CalibStats* stats = nullptr;
  // Set when the caller will supply stats, so a config can be checked first.
  bool expect_stats = false;
  // Quantizing no weight is an error (Error(Usage)) unless this is set.
  bool allow_empty = false;
};

struct QuantizedTensor {
  std::string name, node, op;
  std::string rule;    // the rule's label, "default" or "small tensor"
  std::string action;  // the spec used, "keep f32" or "keep f16"
  std::string algorithm;
  std::vector<int64_t> shape;
  double bits_per_weight = 32;
  double relative_error = 0;  // ||W - W_q|| / ||W||
  // With calibration: the layer's output error on the calibration inputs,
  // ||X (W - W_q)^T|| / ||X W^T|| (from X^T X); -1 when not known.
  double output_error = -1;
};

struct QuantizeReport {
  std::vector<QuantizedTensor> tensors;
  uint64_t bytes_before = 0, bytes_after = 0;  // of the weights considered
  std::vector<std::string> warnings;           // rules that matched nothing
};

using Progress = std::function<void(size_t done, size_t total, const std::string& tensor)>;

// Keys a quantize rule may set; anything else is an error naming the rule.
const std::vector<std::string>& quantize_rule_keys();

// Validates every rule up front (unknown keys, schemes, bits, group sizes)
// so a bad config fails before any work. Error(Usage) names the rule.
void check_quantize_config(const QuantizeConfig& config);

Model quantize_model(const Model& model, const QuantizeConfig& config, QuantizeReport& report,
                     const Progress& progress = {});

}  // namespace slmopt::passes
