// Multiple-choice knapsack: pick one option from every group so the summed
// cost is least while the summed bytes stay within a budget. `slmopt plan`
// solves it with one group per weight tensor and one option per treatment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace slmopt::plan {

struct Option {
  uint64_t bytes = 0;
  double cost = 0;
};

struct Selection {
  std::vector<size_t> pick;  // option index per group
  uint64_t bytes = 0;
  double cost = 0;
};

// Fewest bytes any selection needs (every group at its smallest option).
uint64_t smallest_bytes(const std::vector<std::vector<Option>>& groups);

// Dynamic programming over a byte grid of at most `grid` cells above the
// smallest selection. When the budget's spare bytes number at most `grid`,
// every byte is a cell and the result is optimal. Otherwise sizes are first
// rounded down to the grid (a relaxation: its answer is optimal when it really
// fits) and else rounded up (an answer that always fits, optimal up to one
// cell per group). nullopt when nothing fits. Deterministic.
std::optional<Selection> solve_knapsack(const std::vector<std::vector<Option>>& groups, uint64_t budget,
                                        size_t grid = 16384);

}  // namespace slmopt::plan
