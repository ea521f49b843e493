// Calibration statistics: what the quantize, prune and lowrank passes need to
// know about the activations a model sees, gathered in one streaming pass
// (collector.hpp) and kept in a file (stats_io.hpp) so one calibration run
// serves every pass and can be reproduced and diffed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace slmopt::calib {

// The input side of one matrix-like layer: every activation vector x (length
// `cols`, the weight's input dimension) it multiplied. Conv layers see their
// im2col patches, one set per convolution group; other layers have one group.
struct InputStats {
  std::string kind;  // "matmul" or "conv"
  int64_t groups = 1, cols = 0;
  int64_t count = 0;             // vectors seen (per group)
  std::vector<double> sum_sq;    // groups x cols: sum of x^2
  std::vector<double> sum_abs;   // groups x cols: sum of |x|
  std::vector<double> sum;       // groups x cols: sum of x (empty in files from before it was kept)
  std::vector<float> abs_max;    // groups x cols: max |x|
  std::vector<double> gram;      // groups x cols x cols: X^T X (symmetric), empty when not collected

  bool has_gram() const { return !gram.empty(); }
  // Mean x^2 per input channel of group g: the importance of each weight column.
  std::vector<float> mean_square(int64_t g = 0) const;
  // Mean x per column; zeros when `sum` was not collected.
  std::vector<double> mean(int64_t g = 0) const;
  std::vector<float> mean_abs(int64_t g = 0) const;
  const double* gram_of(int64_t g) const { return gram.data() + g * cols * cols; }
};

struct ValueRange {
  float min = 0, max = 0;
};

// Counts of a value's elements in equal bins over its calibrated range.
struct ValueHistogram {
  float lo = 0, hi = 0;
  std::vector<uint64_t> counts;
};

struct CalibStats {
  int64_t samples = 0;
  std::map<std::string, InputStats> inputs;          // by input key (input_key())
  std::map<std::string, std::string> weight_inputs;  // weight initializer -> input key
  std::map<std::string, ValueRange> ranges;          // every float activation, graph inputs included
  std::map<std::string, ValueHistogram> histograms;  // the same values, when collected

  // The statistics of the layer that reads `weight`, or null.
  const InputStats* for_weight(const std::string& weight) const;
};

}  // namespace slmopt::calib
