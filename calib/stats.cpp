#include "calib/stats.hpp"

namespace slmopt::calib {

std::vector<float> InputStats::mean_square(int64_t g) const {
  std::vector<float> m(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i)
    m[static_cast<size_t>(i)] = count ? static_cast<float>(sum_sq[static_cast<size_t>(g * cols + i)] / static_cast<double>(count)) : 0.0f;
  return m;
}

std::vector<float> InputStats::mean_abs(int64_t g) const {
  std::vector<float> m(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i)
    m[static_cast<size_t>(i)] = count ? static_cast<float>(sum_abs[static_cast<size_t>(g * cols + i)] / static_cast<double>(count)) : 0.0f;
  return m;
}

std::vector<double> InputStats::mean(int64_t g) const {
  std::vector<double> m(static_cast<size_t>(cols), 0.0);
  if (sum.empty() || !count) return m;
  for (int64_t i = 0; i < cols; ++i) m[static_cast<size_t>(i)] = sum[static_cast<size_t>(g * cols + i)] / static_cast<double>(count);
  return m;
}

const InputStats* CalibStats::for_weight(const std::string& weight) const {
  auto w = weight_inputs.find(weight);
  if (w == weight_inputs.end()) return nullptr;
  auto s = inputs.find(w->second);
  return s == inputs.end() ? nullptr : &s->second;
}

}  // namespace slmopt::calib
