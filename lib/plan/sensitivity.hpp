// Sensitivity of a model to each weight's treatment: the error of the model
// with only that weight changed, for every weight and candidate treatment,
// measured by running it. Kept in a JSON cache so planning for another budget
// does not measure again.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "plan/measure.hpp"
#include "plan/variants.hpp"

namespace slmopt::plan {

struct WeightSensitivity {
  PlannedWeight weight;
  std::vector<uint64_t> bytes;  // per treatment
  std::vector<double> error;    // per treatment, additive (measure.hpp)
};

struct SensitivityTable {
  std::string key;     // what the numbers depend on: model digest, data, options
  std::string metric;  // "kl" or "rel_l2"
  std::vector<std::string> treatments;
  uint64_t fixed_bytes = 0;
  std::vector<WeightSensitivity> weights;
  // Whole plans measured so far, by plan_signature(): the cache keeps them too.
  std::map<std::string, double> measured;
  double seconds = 0;  // spent measuring the table
  bool scaled = false;  // one run per weight, the rest extrapolated
};

// SHA-256 over the graph's ops and every initializer's name, type, shape and bytes.
std::string model_digest(const Model& model);

using SensitivityProgress = std::function<void(size_t done, size_t total, const std::string& what)>;

// `scaled`: each weight is run once, at its `reference` treatment (an index
// into the treatments, a quantization scheme), and its other treatments'
// errors are that measurement times the square of their proxy error's ratio
// (the layer's output error with calibration statistics, else the weight's
// relative error): output error grows with the square of a small weight
// perturbation. One run per weight instead of one per weight and treatment.
SensitivityTable measure_sensitivity(const Variants& variants, const ErrorMeasure& measure, const std::string& key,
                                     const SensitivityProgress& progress = {}, bool scaled = false,
                                     size_t reference = 0);

// "0.2.1.0": the treatment index of every weight.
std::string plan_signature(const std::vector<size_t>& pick);

void write_sensitivity_cache(const std::string& path, const SensitivityTable& table);
// nullopt when the file does not exist or was measured for another key;
// Error(BadInput) naming the file when it is malformed.
std::optional<SensitivityTable> read_sensitivity_cache(const std::string& path, const std::string& key);

}  // namespace slmopt::plan
