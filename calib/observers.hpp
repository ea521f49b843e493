// Observers: the range an activation is quantized over, chosen from what
// calibration saw. minmax takes the whole range; percentile drops the
// outermost 0.01 % on each side; mse picks, among ranges cut at several tail
// fractions, the one whose 8-bit grid gives the least squared error over the
// value's histogram (clipping the rare tail against coarser steps); kl picks
// among the same ranges the one whose quantized histogram keeps the least
// KL divergence from the clipped original (TensorRT's entropy calibration).
#pragma once

#include <string>
#include <vector>

#include "calib/stats.hpp"

namespace slmopt::calib {

enum class ObserverKind { MinMax, Percentile, Mse, Kl };

// "minmax", "percentile", "mse" or "kl"; throws Error(Usage) listing them.
ObserverKind parse_observer(const std::string& name);
const char* observer_name(ObserverKind kind);

// The range of `value` for an unsigned 8-bit grid (always holding zero).
// Percentile, mse and kl need the value's histogram and fall back to min/max
// without one. Null when calibration never saw the value.
const ValueRange* observed_range(const CalibStats& stats, const std::string& value, ObserverKind kind, ValueRange& out);

// The value at cumulative fraction q of a histogram (linear within the bin).
float histogram_quantile(const ValueHistogram& h, double q);

}  // namespace slmopt::calib
