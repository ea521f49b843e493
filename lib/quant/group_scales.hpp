// Storing one scale per group, either directly (f16/f32) or two-level: group
// scales as signed integer codes times one stored scale per super-block,
// each group's code picked among the nearest ones by the error it gives.
#pragma once

#include <functional>
#include <vector>

#include "core/quant_tensor.hpp"
#include "quant/group_geometry.hpp"
#include "quant/scheme.hpp"

namespace slmopt::quant {

// Error of group gi's weights if its scale were `scale`.
using GroupError = std::function<double(int64_t gi, float scale)>;

// The parts that hold the scales ("scales" and, two-level, "super_scales"),
// and `scales` set to the values a reader will see.
std::vector<QuantPart> store_group_scales(std::vector<float>& scales, const Geometry& g, const QuantParams& p,
                                          const GroupError& error);
std::vector<PartLayout> group_scales_layout(const Geometry& g, const QuantParams& p);

// Group gi's scale as stored in q.
float read_group_scale(const QuantTensor& q, const Geometry& g, int64_t gi);

}  // namespace slmopt::quant
