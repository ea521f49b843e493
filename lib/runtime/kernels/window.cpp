#include "runtime/kernels/window.hpp"

#include <string>

namespace slmopt::runtime {

Window compute_window(const OpContext& ctx, const std::vector<int64_t>& spatial, const std::vector<int64_t>& kernel,
                      bool ceil_mode) {
  const size_t n = spatial.size();
  Window w;
  w.kernel = kernel;
  w.strides = ctx.attr_ints("strides", std::vector<int64_t>(n, 1));
  w.dilations = ctx.attr_ints("dilations", std::vector<int64_t>(n, 1));
  auto pads = ctx.attr_ints("pads", std::vector<int64_t>(2 * n, 0));
  if (w.strides.size() != n || w.dilations.size() != n || pads.size() != 2 * n || kernel.size() != n)
    ctx.fail("strides, dilations, pads and kernel must match the " + std::to_string(n) + " spatial dims");
  const std::string auto_pad = ctx.attr_string("auto_pad", "NOTSET");
  w.pad_begin.resize(n);
  w.pad_end.resize(n);
  w.out.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (w.strides[i] <= 0 || w.dilations[i] <= 0 || kernel[i] <= 0) ctx.fail("strides, dilations and kernel must be positive");
    const int64_t extent = (kernel[i] - 1) * w.dilations[i] + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      w.out[i] = (spatial[i] + w.strides[i] - 1) / w.strides[i];
      const int64_t total = std::max<int64_t>(0, (w.out[i] - 1) * w.strides[i] + extent - spatial[i]);
      w.pad_begin[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      w.pad_end[i] = total - w.pad_begin[i];
      continue;
    }
    if (auto_pad == "VALID") {
      w.pad_begin[i] = w.pad_end[i] = 0;
    } else if (auto_pad == "NOTSET") {
      w.pad_begin[i] = pads[i];
      w.pad_end[i] = pads[i + n];
    } else {
      ctx.fail("unknown auto_pad '" + auto_pad + "'");
    }
    const int64_t span = spatial[i] + w.pad_begin[i] + w.pad_end[i] - extent;
    if (span < 0) ctx.fail("the window is larger than the padded input");
    w.out[i] = (ceil_mode ? (span + w.strides[i] - 1) / w.strides[i] : span / w.strides[i]) + 1;
    // With ceil_mode the last window must start inside the input or its begin padding.
    if (ceil_mode && (w.out[i] - 1) * w.strides[i] >= spatial[i] + w.pad_begin[i]) --w.out[i];
  }
  return w;
}

Window lifted_to_2d(const Window& win) {
  Window w2 = win;
  if (win.kernel.size() != 1) return w2;
  for (auto* v : {&w2.kernel, &w2.out, &w2.strides, &w2.dilations}) v->insert(v->begin(), 1);
  for (auto* v : {&w2.pad_begin, &w2.pad_end}) v->insert(v->begin(), 0);
  return w2;
}

}  // namespace slmopt::runtime
