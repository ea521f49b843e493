// ONNX's own shape inference (libonnx) run over a model's graph: the element
// type and shape of every value it can work out. Weights stay out of it (only
// their types and dims go in; shape constants under 4 KiB travel with their
// data, so a Reshape's computed shape is known).
#pragma once

#include <string>
#include <unordered_map>

#include "core/ir.hpp"

namespace onnx {
class ModelProto;
}

namespace slmopt::onnx_format {

// Runs inference (with data propagation) on `proto` in place, filling its
// graph's value_info. Never throws: what cannot be inferred stays unknown.
void infer_shapes(onnx::ModelProto& proto);

// The types of the main graph's values by name: its inputs, outputs and
// every intermediate value inference reached (declared value_info included).
std::unordered_map<std::string, ValueInfo> infer_value_types(const Model& model);

}  // namespace slmopt::onnx_format
