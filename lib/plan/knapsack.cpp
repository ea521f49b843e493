#include "plan/knapsack.hpp"

#include <algorithm>
#include <limits>

#include "core/error.hpp"

namespace slmopt::plan {

uint64_t smallest_bytes(const std::vector<std::vector<Option>>& groups) {
  uint64_t total = 0;
  for (const auto& g : groups) {
    if (g.empty()) throw_usage("a knapsack group has no options");
    uint64_t least = g[0].bytes;
    for (const auto& o : g) least = std::min(least, o.bytes);
    total += least;
  }
  return total;
}

namespace {

// The DP over cells of `unit` bytes, each option's bytes above its group's
// least rounded up (round_up) or down; `cells` cells of capacity.
Selection solve_on_grid(const std::vector<std::vector<Option>>& groups, uint64_t unit, size_t cells, bool round_up) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  // best[c]: least cost of the groups so far within c cells.
  std::vector<double> best(cells, 0.0), next(cells);
  std::vector<std::vector<uint16_t>> choice(groups.size(), std::vector<uint16_t>(cells, 0));
  std::vector<std::vector<uint64_t>> weights(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    uint64_t least = groups[g][0].bytes;
    for (const auto& o : groups[g]) least = std::min(least, o.bytes);
    for (const auto& o : groups[g]) weights[g].push_back((o.bytes - least + (round_up ? unit - 1 : 0)) / unit);
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t c = 0; c < cells; ++c) {
      double here = kInf;
      uint16_t pick = 0;
      for (size_t k = 0; k < groups[g].size(); ++k) {
        if (weights[g][k] > c) continue;
        const double v = best[c - weights[g][k]] + groups[g][k].cost;
        if (v < here || (v == here && groups[g][k].bytes < groups[g][pick].bytes)) {
          here = v;
          pick = static_cast<uint16_t>(k);
        }
      }
      next[c] = here;
      choice[g][c] = pick;
    }
    best.swap(next);
  }
  Selection s;
  s.pick.assign(groups.size(), 0);
  size_t c = cells - 1;
  for (size_t g = groups.size(); g-- > 0;) {
    const uint16_t k = choice[g][c];
    s.pick[g] = k;
    c -= static_cast<size_t>(weights[g][k]);
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    s.bytes += groups[g][s.pick[g]].bytes;
    s.cost += groups[g][s.pick[g]].cost;
  }
  return s;
}

}  // namespace

std::optional<Selection> solve_knapsack(const std::vector<std::vector<Option>>& groups, uint64_t budget, size_t grid) {
  const uint64_t floor_bytes = smallest_bytes(groups);
  if (floor_bytes > budget) return std::nullopt;
  for (const auto& g : groups)
    if (g.size() > std::numeric_limits<uint16_t>::max()) throw_usage("a knapsack group has too many options");
  // Work above the floor: each option costs its bytes beyond its group's least.
  const uint64_t spare = budget - floor_bytes;
  grid = std::max<size_t>(grid, 1);
  const uint64_t unit = std::max<uint64_t>(1, (spare + grid - 1) / grid);
  const auto cells = static_cast<size_t>(spare / unit) + 1;
  // Sizes rounded down relax the problem: when its answer really fits, it is
  // optimal. Otherwise sizes rounded up give an answer that always fits.
  if (unit > 1) {
    Selection relaxed = solve_on_grid(groups, unit, cells, false);
    if (relaxed.bytes <= budget) return relaxed;
  }
  return solve_on_grid(groups, unit, cells, true);
}

}  // namespace slmopt::plan
