// Quantized weights as ONNX can state them: int8 codes and float scales read
// through DequantizeLinear (QDQ), so ONNX Runtime and other engines run our
// output. Per tensor and per output channel need opset 13; groups along the
// input dimension become blocked DequantizeLinear (block_size, opset 21).
//
// Exact or refused: every value DequantizeLinear produces equals our
// dequantized weight bit for bit. Symmetric integer codes of 1-8 bits (two-
// level scales expanded to f32), ternary and binary have that form; codes
// with a float minimum and lookup tables do not, and are refused with the
// tensor named. Codes of 4 bits or fewer travel as int4 (two a byte) at
// opset 21, wider codes and older opsets as int8.
#pragma once

#include "core/ir.hpp"

namespace slmopt::onnx_format {

// The model with each quantized initializer replaced by `<name>_quantized`
// (int8 or int4), `<name>_scale` (f32) and a DequantizeLinear node producing <name>.
// Throws Error(Usage) naming the tensor when one has no exact form, or the
// opset is too old for the form it needs.
Model to_qdq(const Model& model);

}  // namespace slmopt::onnx_format
