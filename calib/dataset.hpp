// Evaluation and calibration samples: sets of named input tensors.
//
// Sources:
//  - ONNX test folders: DIR/test_data_set_N/input_K.pb (K-th graph input), as
//    ONNX's own tests store them;
//  - a folder of sample folders, each holding NAME.npy per input;
//  - an .npz file (one sample, arrays named by input) or a folder of them;
//  - explicit --input NAME=FILE pairs (.npy or .pb), one sample;
//  - random samples with a fixed seed (uniform floats in [-1, 1), integers in
//    [0, 8)), symbolic dims set to 1.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/ir.hpp"

namespace slmopt::calib {

using Sample = std::map<std::string, Tensor>;

// Reads .npy or ONNX TensorProto .pb by extension.
Tensor read_tensor_file(const std::string& path);

std::vector<Sample> load_samples(const std::string& dir, const std::vector<ValueInfo>& inputs);
Sample sample_from_pairs(const std::vector<std::string>& name_eq_file, const std::vector<ValueInfo>& inputs);
std::vector<Sample> random_samples(const std::vector<ValueInfo>& inputs, int count, uint32_t seed);

}  // namespace slmopt::calib
