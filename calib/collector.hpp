// Gathers CalibStats while the reference runtime runs the calibration set:
// the runtime's observer hands every value to observe(); values that feed a
// weight's layer update that layer's input statistics (streaming: nothing is
// kept but the sums), and every float value updates its range.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "calib/dataset.hpp"
#include "calib/stats.hpp"
#include "core/ir.hpp"

namespace slmopt::calib {

struct CollectOptions {
  bool gram = true;               // X^T X per layer (GPTQ, activation-aware scaling)
  int64_t max_gram_cols = 4096;   // larger inputs keep only per-channel sums (a Gram matrix costs 8 cols^2 bytes)
  // Bins of each value's histogram over its range (a second pass over the
  // samples, once the ranges are known); 0 collects none.
  int64_t histogram_bins = 2048;
};

class StatsCollector {
 public:
  // The statistics' bytes (X^T X can be large) count against the memory limit
  // while the collector holds them: past it, Error(BadInput) before allocating.
  StatsCollector(const Model& model, const CollectOptions& options);
  // Call for each graph input fed and each value a node produces.
  void observe(const std::string& name, const Tensor& value);
  // Counts one calibration sample.
  void end_sample() { ++stats_.samples; }
  // Second pass: bins `value` into its histogram over the first pass's range.
  void observe_histogram(const std::string& name, const Tensor& value);
  // Fills the lower triangles; the collector is spent afterwards.
  CalibStats finish();

 private:
  struct Reader {
    std::string key;
    const Node* node;
    bool conv, transposed;
    std::vector<int64_t> kernel;  // Conv: the weight's spatial shape
    int64_t groups = 1;
  };
  void add_rows(InputStats& s, int64_t group, const float* x, int64_t rows);
  void observe_matmul(const Reader& r, const Tensor& x);
  void observe_conv(const Reader& r, const Tensor& x);

  CollectOptions options_;
  std::multimap<std::string, Reader> readers_;  // activation name -> layers that read it
  CalibStats stats_;
  // Released however the collector ends, a throwing constructor included.
  struct Charge {
    uint64_t bytes = 0;
    // Checks `more` against the limit (Error(BadInput) naming `what`), then counts it.
    void add(uint64_t more, const std::string& what);
    Charge() = default;
    Charge(const Charge&) = delete;
    Charge& operator=(const Charge&) = delete;
    ~Charge();
  } charged_;
};

using SampleProgress = std::function<void(size_t done, size_t total)>;

// Runs `model` on every sample and returns what the collector gathered.
CalibStats collect_stats(const Model& model, const std::vector<Sample>& samples, const CollectOptions& options,
                         const SampleProgress& progress = {});

}  // namespace slmopt::calib
