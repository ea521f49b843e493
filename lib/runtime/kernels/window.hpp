// Sliding-window geometry shared by Conv and the pooling ops: output sizes and
// begin padding from auto_pad / pads / strides / dilations / ceil_mode.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/op_context.hpp"

namespace slmopt::runtime {

struct Window {
  std::vector<int64_t> kernel, strides, dilations, pad_begin, pad_end, out;
};

// `spatial` are the input's spatial dims; `kernel` the window size.
Window compute_window(const OpContext& ctx, const std::vector<int64_t>& spatial, const std::vector<int64_t>& kernel,
                      bool ceil_mode = false);

// A 1-D window as a 2-D one of height 1, so the 2-D im2col serves both; any
// other window as it is.
Window lifted_to_2d(const Window& win);

}  // namespace slmopt::runtime
