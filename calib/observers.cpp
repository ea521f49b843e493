#include "calib/observers.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace slmopt::calib {
namespace {

// The unsigned 8-bit grid over [lo, hi] widened to hold zero, as the int8
// pass lays it out; the histogram is read at its bin centres.
struct Uint8Grid {
  double scale, zero;
  Uint8Grid(float lo, float hi) {
    lo = std::min(lo, 0.0f);
    hi = std::max(hi, 0.0f);
    scale = hi > lo ? (static_cast<double>(hi) - lo) / 255.0 : 1.0;
    zero = std::clamp(std::nearbyint(-lo / scale), 0.0, 255.0);
  }
  int level(double x) const { return static_cast<int>(std::clamp(std::nearbyint(x / scale) + zero, 0.0, 255.0)); }
  double value(int level) const { return (level - zero) * scale; }
};

double bin_width(const ValueHistogram& h) {
  return (static_cast<double>(h.hi) - h.lo) / static_cast<double>(h.counts.size());
}

double bin_centre(const ValueHistogram& h, size_t b) { return h.lo + (static_cast<double>(b) + 0.5) * bin_width(h); }

// Squared error of the grid over [lo, hi] on the histogram.
double grid_error(const ValueHistogram& h, float lo, float hi) {
  const Uint8Grid grid(lo, hi);
  double err = 0;
  for (size_t b = 0; b < h.counts.size(); ++b) {
    if (!h.counts[b]) continue;
    const double x = bin_centre(h, b), q = grid.value(grid.level(x));
    err += static_cast<double>(h.counts[b]) * (x - q) * (x - q);
  }
  return err;
}

// KL divergence (TensorRT's entropy calibration, for an asymmetric grid)
// between P, the histogram clipped to [lo, hi] with the mass outside folded
// into the edge bins, and Q, the in-range histogram (without that mass)
// after 8-bit quantization: each grid level's mass spread evenly over the
// level's non-empty bins of P. Q lacking the clipped mass is what makes
// clipping cost something.
double grid_kl(const ValueHistogram& h, float lo, float hi) {
  const Uint8Grid grid(lo, hi);
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  std::vector<double> p(h.counts.size(), 0.0), level_mass(256, 0.0), level_bins(256, 0.0);
  std::vector<int> level(h.counts.size());
  for (size_t b = 0; b < h.counts.size(); ++b) {
    const double x = bin_centre(h, b);
    level[b] = grid.level(x);
    const double clipped = std::clamp(x, static_cast<double>(lo), static_cast<double>(hi));
    const size_t into = std::min(h.counts.size() - 1, static_cast<size_t>(std::max(0.0, (clipped - h.lo) / bin_width(h))));
    p[into] += static_cast<double>(h.counts[b]);
    if (clipped == x) level_mass[static_cast<size_t>(level[b])] += static_cast<double>(h.counts[b]);
  }
  double p_total = 0, q_total = 0;
  for (size_t b = 0; b < p.size(); ++b) {
    p_total += p[b];
    level_bins[static_cast<size_t>(level[b])] += p[b] > 0;
  }
  for (double m : level_mass) q_total += m;
  if (p_total == 0 || q_total == 0) return INFINITY;
  constexpr double kFloor = 1e-12;  // Q's share where the in-range histogram is empty
  double kl = 0;
  for (size_t b = 0; b < p.size(); ++b) {
    if (p[b] == 0) continue;
    const size_t l = static_cast<size_t>(level[b]);
    const double pn = p[b] / p_total, qn = std::max(level_mass[l] / level_bins[l] / q_total, kFloor);
    kl += pn * std::log(pn / qn);
  }
  return kl;
}

}  // namespace

ObserverKind parse_observer(const std::string& name) {
  if (name == "minmax") return ObserverKind::MinMax;
  if (name == "percentile") return ObserverKind::Percentile;
  if (name == "mse") return ObserverKind::Mse;
  if (name == "kl") return ObserverKind::Kl;
  throw_usage("unknown observer '" + name + "' (known: minmax, percentile, mse, kl)");
}

const char* observer_name(ObserverKind kind) {
  switch (kind) {
    case ObserverKind::MinMax: return "minmax";
    case ObserverKind::Percentile: return "percentile";
    case ObserverKind::Mse: return "mse";
    case ObserverKind::Kl: return "kl";
  }
  return "?";
}

float histogram_quantile(const ValueHistogram& h, double q) {
  uint64_t total = 0;
  for (auto c : h.counts) total += c;
  if (total == 0 || h.counts.empty()) return h.lo;
  const double target = q * static_cast<double>(total);
  const double width = bin_width(h);
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
  // mse and kl: tails cut at these fractions on each side, the full range first.
  static constexpr double kTails[] = {0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2};
  double best = INFINITY;
  for (double lo_tail : kTails)
    for (double hi_tail : kTails) {
      const float lo = lo_tail == 0 ? r->second.min : histogram_quantile(hist, lo_tail);
      const float hi = hi_tail == 0 ? r->second.max : histogram_quantile(hist, 1.0 - hi_tail);
      const double err = kind == ObserverKind::Kl ? grid_kl(hist, lo, hi) : grid_error(hist, lo, hi);
      if (err < best) {
        best = err;
        out = {lo, hi};
      }
    }
  return &out;
}

}  // namespace slmopt::calib
