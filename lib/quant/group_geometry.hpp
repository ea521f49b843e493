// Where a scheme's groups lie in a rows x cols matrix: per tensor (group -1,
// one group over everything), per row (group 0) or runs of `group` weights
// along each row, the last run of a row shorter when cols is not a multiple.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/quant_tensor.hpp"

namespace slmopt::quant {

struct Geometry {
  bool per_tensor = false;
  int64_t rows = 0, cols = 0, glen = 0, gpr = 0, groups = 0;
  bool two_level = false;
  int64_t gps = 0, spr = 0, supers = 0;  // groups per super-block, super-blocks per row
};

inline Geometry geometry(const QuantParams& p, int64_t rows, int64_t cols) {
  Geometry g;
  g.rows = rows;
  g.cols = cols;
  g.per_tensor = p.group < 0;
  if (g.per_tensor) {
    g.glen = rows * cols;
    g.groups = rows * cols > 0 ? 1 : 0;
  } else {
    g.glen = (p.group <= 0 || p.group >= cols) ? cols : p.group;
    g.gpr = cols > 0 ? (cols + g.glen - 1) / g.glen : 0;
    g.groups = rows * g.gpr;
  }
  g.two_level = p.sub_scale_bits > 0;
  if (g.two_level) {
    g.gps = std::max<int64_t>(1, p.super_block / std::max<int64_t>(1, p.group));
    g.spr = (g.gpr + g.gps - 1) / g.gps;
    g.supers = rows * g.spr;
  }
  return g;
}

struct Span {
  int64_t offset, length, col0;
};

inline Span group_span(const Geometry& g, int64_t gi) {
  if (g.per_tensor) return {0, g.rows * g.cols, 0};
  const int64_t r = gi / g.gpr, col0 = (gi % g.gpr) * g.glen;
  return {r * g.cols + col0, std::min(g.glen, g.cols - col0), col0};
}

// The group holding element (r, c).
inline int64_t group_of(const Geometry& g, int64_t r, int64_t c) { return g.per_tensor ? 0 : r * g.gpr + c / g.glen; }
// One past the last column of the group that starts at or holds column c of a row.
inline int64_t group_end(const Geometry& g, int64_t c) {
  return g.per_tensor ? g.cols : std::min(g.cols, (c / g.glen + 1) * g.glen);
}

// Weights of a group's elements, or null when every element counts the same.
inline const float* group_weights(const Geometry& g, const Span& s, const float* importance, std::vector<float>& scratch) {
  if (!importance) return nullptr;
  if (!g.per_tensor) return importance + s.col0;
  scratch.resize(static_cast<size_t>(s.length));
  for (int64_t i = 0; i < s.length; ++i) scratch[static_cast<size_t>(i)] = importance[i % g.cols];
  return scratch.data();
}

}  // namespace slmopt::quant
