// How far a candidate's outputs are from the reference's on calibration data,
// as one number that adds up over independent weight changes: the planner sums
// per-weight measurements to predict a whole plan's error.
//   kl      mean KL(p_reference || p_candidate) per row (language models: per
//           scored token; classifiers whose outputs are probabilities)
//   rel_l2  mean ||c - r||^2 / ||r||^2 per sample and output (reported as its
//           square root, the relative L2 error)
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/ir.hpp"
#include "core/tensor.hpp"

namespace slmopt::plan {

class ErrorMeasure {
 public:
  virtual ~ErrorMeasure() = default;
  virtual std::string metric() const = 0;
  // The additive error of `candidate` (0 for the reference itself).
  virtual double error(const Model& candidate) const = 0;
};

// The errors of models 0..count-1 (make(i) builds model i, from any thread),
// in order. Models run side by side, one per core, each on one thread: the
// planner's many small runs gain more from that than from splitting every
// product, and the results do not depend on the number of cores.
// finished(i) is called after model i, from one thread at a time. The first
// exception any run throws is rethrown once the others are done.
std::vector<double> measure_many(const ErrorMeasure& measure, size_t count, const std::function<Model(size_t)>& make,
                                 const std::function<void(size_t)>& finished = {});

// What users read: KL as it is, rel_l2 as the square root of the mean square.
double displayed_error(const std::string& metric, double additive);

// Runs the reference once per sample and keeps its outputs. `metric` is "kl",
// "rel_l2" or "auto" (kl when every reference output's last axis holds
// probability distributions, rel_l2 otherwise).
std::unique_ptr<ErrorMeasure> output_error_measure(const Model& reference,
                                                   std::vector<std::map<std::string, Tensor>> samples,
                                                   const std::string& metric);

// A decoder language model scored on token windows as `slmopt eval --text`
// scores it (the second half of every window): mean KL per scored token.
std::unique_ptr<ErrorMeasure> language_model_measure(const Model& reference, std::vector<std::vector<int64_t>> windows);

}  // namespace slmopt::plan
