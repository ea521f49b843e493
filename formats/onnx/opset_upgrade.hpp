// Raising a model's ai.onnx opset with ONNX's own version converter
// (onnx/version_converter in libonnx), for outputs that add ops an old opset
// lacks: QuantizeLinear and QLinearConv need 10, per-channel
// DequantizeLinear 13. Exporters still write opset 9 (PaddlePaddle's, old
// tf2onnx), and ONNX Runtime refuses a node newer than the model's opset.
#pragma once

#include "core/ir.hpp"

namespace slmopt::onnx_format {

// The version of the default (ai.onnx) domain; 0 when the model imports none.
int onnx_opset(const Model& model);

// `model` with its ai.onnx opset at least `target`: unchanged when it is
// already, else every node carried over by the converter's adapters (Upsample
// -> Resize, Slice's and Clip's attributes -> inputs, ...). Initializers keep
// their tensors (the converter sees only their types and shapes). Error(Usage)
// naming the model and the converter's complaint when an op cannot be carried
// over.
Model with_opset_at_least(const Model& model, int target);

}  // namespace slmopt::onnx_format
