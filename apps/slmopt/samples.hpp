// Loads the samples a command was asked to use (see DataOptions).
#pragma once

#include "calib/dataset.hpp"
#include "cli_common.hpp"

namespace slmopt::cli {

std::vector<calib::Sample> load_requested_samples(const DataOptions& data, const std::vector<ValueInfo>& inputs);

}  // namespace slmopt::cli
