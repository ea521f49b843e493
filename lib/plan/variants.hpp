// Every weight the planner decides, under every candidate treatment: the
// quantize pass run once per treatment over the whole model, kept in memory so
// any plan is assembled by swapping tensors, never by quantizing again.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/ir.hpp"
#include "passes/quantize.hpp"

namespace slmopt::plan {

// A treatment is "f32" (the weight as it is, widened), "f16", or a quantization
// scheme or preset ("q4", "int3-g16-k6", ...).
bool is_float_treatment(const std::string& treatment);
// Error(Usage) for an unknown scheme or a repeated treatment.
void check_treatments(const std::vector<std::string>& treatments);

struct PlannedWeight {
  std::string name, op;
  std::vector<int64_t> shape;
  int64_t numel = 0;
};

using VariantProgress = std::function<void(const std::string& treatment)>;

class Variants {
 public:
  // `base` supplies algorithm, calibration statistics and min_elements; its
  // rules and default are replaced per treatment.
  Variants(const Model& model, const std::vector<std::string>& treatments, const passes::QuantizeConfig& base,
           const VariantProgress& progress = {});

  const std::vector<std::string>& treatments() const { return treatments_; }
  const std::vector<PlannedWeight>& weights() const { return weights_; }
  // Bytes of all weights no treatment touches (biases, norms, small tensors).
  uint64_t fixed_bytes() const { return fixed_bytes_; }
  uint64_t bytes(size_t weight, size_t treatment) const { return bytes_[weight][treatment]; }
  // ||W - W_t|| / ||W|| and, with calibration statistics, the layer's output
  // error ||X (W - W_t)^T|| / ||X W^T|| (-1 when unknown): cheap proxies that
  // scaled sensitivities extrapolate one measurement per weight with.
  double relative_error(size_t weight, size_t treatment) const { return relative_error_[weight][treatment]; }
  double output_error(size_t weight, size_t treatment) const { return output_error_[weight][treatment]; }
  // The model with weight i under treatment pick[i] (f16 as its rounded f32 values:
  // the same numbers the quantize pass's Cast gives back).
  Model assemble(const std::vector<size_t>& pick) const;
  // The original model with only weight `weight` under `treatment`.
  Model with_one(size_t weight, size_t treatment) const;
  const Model& original() const { return model_; }

 private:
  Model model_;
  std::vector<std::string> treatments_;
  std::vector<PlannedWeight> weights_;
  std::vector<size_t> initializer_index_;          // per weight, into model_.graph.initializers
  std::vector<std::vector<Tensor>> tensors_;       // [weight][treatment]
  std::vector<std::vector<uint64_t>> bytes_;       // [weight][treatment]
  std::vector<std::vector<double>> relative_error_, output_error_;  // [weight][treatment]
  uint64_t fixed_bytes_ = 0;
};

}  // namespace slmopt::plan
