#include "samples.hpp"

namespace slmopt::cli {

std::vector<calib::Sample> load_requested_samples(const DataOptions& data, const std::vector<ValueInfo>& inputs) {
  const int sources = !data.dir.empty() + !data.inputs.empty() + (data.random > 0);
  if (sources != 1) throw_usage("give exactly one of --data DIR, --input NAME=FILE, --random N");
  if (!data.dir.empty()) return calib::load_samples(data.dir, inputs);
  if (!data.inputs.empty()) return {calib::sample_from_pairs(data.inputs, inputs)};
  return calib::random_samples(inputs, data.random, data.seed);
}

}  // namespace slmopt::cli
