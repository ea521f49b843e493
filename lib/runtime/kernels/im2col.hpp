// One row of the im2col matrix (one input channel, one kernel position, every
// output position): a plain N-d reference and a fast 2-D path tested against it.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernels/window.hpp"

namespace slmopt::runtime {

template <class T>
void im2col_row_reference(const T* plane, const std::vector<int64_t>& in_sp, const Window& win, int64_t kp, T* row);
template <class T>
void im2col_row_2d(const T* plane, const std::vector<int64_t>& in_sp, const Window& win, int64_t kp, T* row);

}  // namespace slmopt::runtime
