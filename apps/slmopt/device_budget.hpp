// What a model needs on the device (flash for the blob, RAM for activations)
// and whether that fits the --flash/--ram budget; pack and inspect share it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/ir.hpp"
#include "core/tensor.hpp"

namespace slmopt::cli {

// "4MiB", "512KiB", "2MB", "1.5M", "65536": bytes. Error(Usage) otherwise.
uint64_t parse_size(const std::string& text, const std::string& flag);

struct DeviceFigures {
  uint64_t flash_bytes = 0;       // the blob padded to the sector
  std::optional<uint64_t> ram_bytes;  // planned activation arena, inputs and kernel scratch
  std::string ram_shapes;         // the input shapes the plan holds for
};

// The RAM a run on `feeds` needs: the memory plan's arena, the inputs, and the
// most working memory one kernel needs (im2col columns, dequantized weight
// rows: what this runtime's kernels use; a device's kernels may need less).
uint64_t activation_ram(const Model& model, const std::map<std::string, Tensor>& feeds);

// Inputs of the model's declared shapes (symbolic dimensions 1), for the RAM plan.
std::map<std::string, Tensor> declared_shape_feeds(const Model& model);

// "input_1 [1,76,32,1], ..."
std::string shapes_of(const std::map<std::string, Tensor>& feeds);

// One line per budget exceeded ("flash: needs X, the device has Y (Z over)").
std::vector<std::string> over_budget(const DeviceFigures& figures, const std::optional<uint64_t>& flash,
                                     const std::optional<uint64_t>& ram);

}  // namespace slmopt::cli
