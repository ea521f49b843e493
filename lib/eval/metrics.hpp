// How far a candidate output is from the reference output, per sample, and the
// mean over samples with a 95 % confidence interval (Student's t).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace slmopt::eval {

// One row of metric names; every metric is defined per sample.
//   max_abs   largest |c - r|
//   mean_abs  mean |c - r|
//   rel_l2    ||c - r|| / ||r||
//   cosine    <c, r> / (||c|| ||r||)
//   sqnr_db   10 log10(||r||^2 / ||c - r||^2)
//   top1      share of rows (last axis) whose argmax agrees      (classifier-like outputs)
//   kl        mean KL(p_ref || p_cand) over rows, softmax of the last axis unless the
//             rows already are probability distributions      (classifier-like outputs)
//   ppl, ppl_delta  the candidate's perplexity and its excess over the
//             reference's (language models, eval --text only)
inline const std::vector<std::string> kMetricNames = {"max_abs", "mean_abs", "rel_l2", "cosine", "sqnr_db",
                                                      "top1",    "kl",       "ppl",    "ppl_delta"};

using SampleMetrics = std::map<std::string, double>;

// Throws Error(BadInput) when shapes or types cannot be compared.
SampleMetrics compare_tensors(const Tensor& reference, const Tensor& candidate);

struct Summary {
  double mean = 0;
  double lower = 0;  // 95 % confidence interval of the mean
  double upper = 0;
  double worst = 0;  // max over samples (min for cosine, sqnr_db, top1)
  int samples = 0;
};

std::map<std::string, Summary> summarize(const std::vector<SampleMetrics>& per_sample);

// True when the tensor's last axis (of at least 2) holds probability
// distributions: non-negative rows summing to 1, as a Softmax writes them.
bool holds_distributions(const Tensor& t);

// True for metrics where larger is better (cosine, sqnr_db, top1).
bool higher_is_better(const std::string& metric);

}  // namespace slmopt::eval
