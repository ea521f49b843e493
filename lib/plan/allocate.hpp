// Choosing one treatment per weight under a byte budget (knapsack.hpp over a
// sensitivity table), the uniform and hand-mixed baselines plans are compared
// with, and the rule file that makes `slmopt quantize` build a plan.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "plan/sensitivity.hpp"

namespace slmopt::plan {

struct Plan {
  std::string name;         // "planned", "uniform q4", "hand mix (q8 ends and embeddings, q4 rest)"
  std::vector<size_t> pick;  // treatment index per weight
  uint64_t bytes = 0;        // every weight of the model: fixed + planned
  double predicted = 0;      // summed per-weight errors
};

// Bytes of the model with every weight at its smallest (largest) treatment.
uint64_t smallest_size(const SensitivityTable& table);
uint64_t largest_size(const SensitivityTable& table);

Plan plan_from_pick(const SensitivityTable& table, std::vector<size_t> pick, std::string name);

// The plan of least predicted error within `budget` bytes (all weights). The
// per-weight errors are raised to `exponent` before summing: 1 is the plain
// additive model; others give neighbouring plans for refinement. Error(Usage)
// naming the smallest achievable size when the budget is below it.
Plan plan_for_budget(const SensitivityTable& table, uint64_t budget, double exponent = 1.0);

Plan uniform_plan(const SensitivityTable& table, size_t treatment);

// The mix people write by hand: embeddings (Gather weights) and the first and
// last weight at `high`, everything else at `low`; nullopt when either
// treatment is not a candidate.
std::optional<Plan> hand_mix_plan(const SensitivityTable& table, const std::string& high, const std::string& low);

struct RuleFileInfo {
  std::string model;
  std::string algorithm;  // the quantize algorithm the variants were made with
  int64_t min_elements = 1024;
  uint64_t budget = 0;
  std::optional<double> measured;  // displayed error of the whole plan
};

// YAML for `slmopt quantize --config`: one rule per weight, naming it exactly.
std::string plan_rule_file(const SensitivityTable& table, const Plan& plan, const RuleFileInfo& info);

}  // namespace slmopt::plan
