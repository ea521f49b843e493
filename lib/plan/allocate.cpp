#include "plan/allocate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/memory_limit.hpp"
#include "plan/knapsack.hpp"

namespace slmopt::plan {

namespace {

uint64_t extreme_size(const SensitivityTable& table, bool largest) {
  uint64_t total = table.fixed_bytes;
  for (const auto& w : table.weights)
    total += largest ? *std::max_element(w.bytes.begin(), w.bytes.end()) : *std::min_element(w.bytes.begin(), w.bytes.end());
  return total;
}

size_t treatment_index(const SensitivityTable& table, const std::string& name) {
  const auto it = std::find(table.treatments.begin(), table.treatments.end(), name);
  return it == table.treatments.end() ? table.treatments.size() : static_cast<size_t>(it - table.treatments.begin());
}

}  // namespace

uint64_t smallest_size(const SensitivityTable& table) { return extreme_size(table, false); }
uint64_t largest_size(const SensitivityTable& table) { return extreme_size(table, true); }

Plan plan_from_pick(const SensitivityTable& table, std::vector<size_t> pick, std::string name) {
  Plan p;
  p.name = std::move(name);
  p.bytes = table.fixed_bytes;
  for (size_t i = 0; i < pick.size(); ++i) {
    p.bytes += table.weights[i].bytes[pick[i]];
    p.predicted += table.weights[i].error[pick[i]];
  }
  p.pick = std::move(pick);
  return p;
}

Plan plan_for_budget(const SensitivityTable& table, uint64_t budget, double exponent) {
  const uint64_t least = smallest_size(table);
  if (budget < least) {
    const auto& w0 = table.weights.front();
    const size_t smallest_treatment =
        static_cast<size_t>(std::min_element(w0.bytes.begin(), w0.bytes.end()) - w0.bytes.begin());
    throw_usage("a budget of " + std::to_string(budget) + " bytes (" + human_bytes(budget) +
                ") cannot be met: the smallest plan, every weight at " + table.treatments[smallest_treatment] +
                " and the " + human_bytes(table.fixed_bytes) + " of weights no treatment changes, takes " +
                std::to_string(least) + " bytes (" + human_bytes(least) + ")");
  }
  std::vector<std::vector<Option>> groups;
  for (const auto& w : table.weights) {
    std::vector<Option> options;
    for (size_t t = 0; t < w.bytes.size(); ++t)
      options.push_back({w.bytes[t], std::pow(std::max(0.0, w.error[t]), exponent)});
    groups.push_back(std::move(options));
  }
  const auto s = solve_knapsack(groups, budget - table.fixed_bytes);
  if (!s) throw_usage("no plan fits " + std::to_string(budget) + " bytes");
  return plan_from_pick(table, s->pick, "planned");
}

Plan uniform_plan(const SensitivityTable& table, size_t treatment) {
  return plan_from_pick(table, std::vector<size_t>(table.weights.size(), treatment), "uniform " + table.treatments.at(treatment));
}

std::optional<Plan> hand_mix_plan(const SensitivityTable& table, const std::string& high, const std::string& low) {
  const size_t hi = treatment_index(table, high), lo = treatment_index(table, low);
  if (hi == table.treatments.size() || lo == table.treatments.size() || table.weights.empty()) return std::nullopt;
  std::vector<size_t> pick(table.weights.size(), lo);
  pick.front() = pick.back() = hi;
  for (size_t i = 0; i < table.weights.size(); ++i)
    if (table.weights[i].weight.op == "Gather") pick[i] = hi;
  return plan_from_pick(table, pick, "hand mix (" + high + " embeddings, first and last; " + low + " rest)");
}

std::string plan_rule_file(const SensitivityTable& table, const Plan& plan, const RuleFileInfo& info) {
  std::string out;
  char line[512];
  out += "# slmopt plan for " + info.model + ": " + std::to_string(table.weights.size()) + " weights within " +
         std::to_string(info.budget) + " bytes (" + human_bytes(info.budget) + ")\n";
  std::snprintf(line, sizeof line, "# weights %llu bytes (%s); predicted %s %.4g",
                static_cast<unsigned long long>(plan.bytes), human_bytes(plan.bytes).c_str(), table.metric.c_str(),
                displayed_error(table.metric, plan.predicted));
  out += line;
  if (info.measured) {
    std::snprintf(line, sizeof line, ", measured %.4g", *info.measured);
    out += line;
  }
  out += "\n# Build it with: slmopt quantize MODEL -o OUT.slm --config THIS_FILE";
  out += info.algorithm == "gptq" || info.algorithm == "awq" ? " --calib-stats STATS\n" : "\n";
  // The default never applies (every planned weight has its rule); min_elements
  // keeps the small weights as they are, as they were when planning.
  size_t default_treatment = 0;
  for (size_t t = 0; t < table.treatments.size(); ++t)
    if (!is_float_treatment(table.treatments[t])) {
      default_treatment = t;
      break;
    }
  out += "default: " + table.treatments[default_treatment] + "\n";
  out += "algorithm: " + info.algorithm + "\n";
  out += "min_elements: " + std::to_string(info.min_elements) + "\n";
  out += "rules:\n";
  for (size_t i = 0; i < table.weights.size(); ++i) {
    const auto& w = table.weights[i];
    const std::string& t = table.treatments[plan.pick[i]];
    out += "  - match: " + nlohmann::json(w.weight.name).dump() + "\n";
    out += is_float_treatment(t) ? "    keep: " + t : "    scheme: " + t;
    std::snprintf(line, sizeof line, "    # %s bytes, %s %.3g", std::to_string(w.bytes[plan.pick[i]]).c_str(),
                  table.metric.c_str(), displayed_error(table.metric, w.error[plan.pick[i]]));
    out += line;
    out += "\n";
  }
  return out;
}

}  // namespace slmopt::plan
