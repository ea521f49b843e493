#include "quant/group_scales.hpp"

#include <cmath>

#include "quant/bitpack.hpp"
#include "quant/scale_store.hpp"
#include "quant/uniform_fit.hpp"

namespace slmopt::quant {

std::vector<PartLayout> group_scales_layout(const Geometry& g, const QuantParams& p) {
  if (!g.two_level) return {{"scales", scale_bits(p.scale_dtype), g.groups}};
  return {{"scales", p.sub_scale_bits, g.groups}, {"super_scales", scale_bits(p.scale_dtype), g.supers}};
}

std::vector<QuantPart> store_group_scales(std::vector<float>& scales, const Geometry& g, const QuantParams& p,
                                          const GroupError& error) {
  const int sb = scale_bits(p.scale_dtype);
  if (!g.two_level) {
    for (auto& s : scales) s = stored_value(s, p.scale_dtype);
    return {{"scales", sb, g.groups, pack_scales(scales, p.scale_dtype)}};
  }
  const CodeRange range = code_range(p.sub_scale_bits, true);
  std::vector<float> supers;
  BitWriter codes(g.groups, p.sub_scale_bits);
  for (int64_t r = 0; r < g.rows; ++r)
    for (int64_t j = 0; j < g.spr; ++j) {
      const int64_t first = r * g.gpr + j * g.gps, end = std::min(first + g.gps, (r + 1) * g.gpr);
      const float super = stored_value(fit_search(scales.data() + first, nullptr, end - first, range).scale, p.scale_dtype);
      supers.push_back(super);
      const UniformFit fit{super, 0.0f};
      for (int64_t gi = first; gi < end; ++gi) {
        const int q0 = quantize_code(scales[static_cast<size_t>(gi)], fit, range);
        int best = q0;
        double best_err = INFINITY;
        for (int q = std::max(range.qmin, q0 - 1); q <= std::min(range.qmax, q0 + 1); ++q) {
          const double e = error(gi, super * static_cast<float>(q));
          if (e < best_err) {
            best_err = e;
            best = q;
          }
        }
        scales[static_cast<size_t>(gi)] = super * static_cast<float>(best);
        codes.put(from_signed(best, p.sub_scale_bits));
      }
    }
  return {{"scales", p.sub_scale_bits, g.groups, codes.take()},
          {"super_scales", sb, g.supers, pack_scales(supers, p.scale_dtype)}};
}

float read_group_scale(const QuantTensor& q, const Geometry& g, int64_t gi) {
  const QuantParams& p = q.params;
  const uint8_t* scales = q.part("scales")->bytes.data();
  if (!g.two_level) return read_scale(scales, gi, p.scale_dtype);
  const int64_t super = (gi / g.gpr) * g.spr + (gi % g.gpr) / g.gps;
  return read_scale(q.part("super_scales")->bytes.data(), super, p.scale_dtype) *
         static_cast<float>(to_signed(read_code(scales, gi, p.sub_scale_bits), p.sub_scale_bits));
}

}  // namespace slmopt::quant
