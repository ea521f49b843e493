// Small ONNX models built in code for the reader/writer tests.
#pragma once

#include "core/ir.hpp"

namespace slmopt::test {

// Opset 17 / IR 8 model with an initializer of every ONNX dtype that ONNX 1.12's
// checker knows, an Identity per initializer, a Constant node, an If with two
// subgraph branches (one with its own initializer), symbolic input dims and
// metadata + provenance.
Model make_every_dtype_model(uint32_t seed);

}  // namespace slmopt::test
