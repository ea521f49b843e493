#include "calib/observers.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace slmopt::calib {
namespace {

// Squared error of an unsigned 8-bit grid over [lo, hi] (zero included) on
// the histogram's bin centres.
double grid_error(const ValueHistogram& h, float lo, float hi) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  const double scale = hi > lo ? (static_cast<double>(hi) - lo) / 255.0 : 1.0;
  const double zero = std::clamp(std::nearbyint(-lo / scale), 0.0, 255.0);
  const double width = (static_cast<double>(h.hi) - h.lo) / static_cast<double>(h.counts.size());
  double err = 0;
  for (size_t b = 0; b < h.counts.size(); ++b) {
    if (!h.counts[b]) continue;
    const double x = h.lo + (static_cast<double>(b) + 0.5) * width;
    const double q = (std::clamp(std::nearbyint(x / scale) + zero, 0.0, 255.0) - zero) * scale;
    err += static_cast<double>(h.counts[b]) * (x - q) * (x - q);
  }
  return err;
}

}  // namespace

ObserverKind parse_observer(const std::string& name) {
  if (name == "minmax") return ObserverKind::MinMax;
  if (name == "percentile") return ObserverKind::Percentile;
  if (name == "mse") return ObserverKind::Mse;
  throw_usage("unknown observer '" + name + "' (known: minmax, percentile, mse)");
}

const char* observer_name(ObserverKind kind) {
  switch (kind) {
    case ObserverKind::MinMax: return "minmax";
    case ObserverKind::Percentile: return "percentile";
    case ObserverKind::Mse: return "mse";
  }
  return "?";
}

float histogram_quantile(const ValueHistogram& h, double q) {
  uint64_t total = 0;
  for (auto c : h.counts) total += c;
  if (total == 0 || h.counts.empty()) return h.lo;
  const double target = q * static_cast<double>(total);
  const double width = (static_cast<double>(h.hi) - h.lo) / static_cast<double>(h.counts.size());
  double seen = 0;
  for (size_t b = 0; b < h.counts.size(); ++b) {
    const double c = static_cast<double>(h.counts[b]);
    if (seen + c >= target && c > 0)
      return static_cast<float>(h.lo + (static_cast<double>(b) + (target - seen) / c) * width);
    seen += c;
  }
  return h.hi;
}

const ValueRange* observed_range(const CalibStats& stats, const std::string& value, ObserverKind kind, ValueRange& out) {
  auto r = stats.ranges.find(value);
  if (r == stats.ranges.end() || !(r->second.min <= r->second.max)) return nullptr;
  out = r->second;
  auto h = stats.histograms.find(value);
  if (kind == ObserverKind::MinMax || h == stats.histograms.end() || h->second.counts.empty()) return &out;
  const ValueHistogram& hist = h->second;
  if (kind == ObserverKind::Percentile) {
    out = {histogram_quantile(hist, 1e-4), histogram_quantile(hist, 1.0 - 1e-4)};
    return &out;
  }
  // mse: tails cut at these fractions on each side, the full range first.
  static constexpr double kTails[] = {0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2};
  double best = INFINITY;
  for (double lo_tail : kTails)
    for (double hi_tail : kTails) {
      const float lo = lo_tail == 0 ? r->second.min : histogram_quantile(hist, lo_tail);
      const float hi = hi_tail == 0 ? r->second.max : histogram_quantile(hist, 1.0 - hi_tail);
      const double err = grid_error(hist, lo, hi);
      if (err < best) {
        best = err;
        out = {lo, hi};
      }
    }
  return &out;
}

}  // namespace slmopt::calib
