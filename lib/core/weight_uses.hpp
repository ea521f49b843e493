// Which initializers are weights of a matrix-like op (MatMul, Gemm, Conv and
// com.microsoft FusedConv,
// ConvTranspose, LSTM/GRU/RNN's W and R, com.microsoft Attention's packed
// projection, or a Gather table), how the op reads them, and which activation
// meets them.
// The quantize pass and the calibration collector both work from this list,
// so a weight's statistics are gathered exactly where it is used.
#pragma once

#include <map>
#include <string>

#include "core/ir.hpp"

namespace slmopt {

struct WeightUse {
  std::string node, op;
  // MatMul's B [K, N] (and Gemm's B without transB) hold the input dimension
  // first; Gemm with transB, Conv and Gather tables hold the output first.
  bool input_axis_first = false;
  // The activation the weight multiplies ("" for Gather) and how it is laid
  // out: Gemm's transA, and for Conv the node itself (its window).
  std::string activation;
  bool activation_transposed = false;
};

// Layers in If/Loop/Scan bodies count: a weight is an initializer of the main
// graph (runtime::constants_to_initializers puts every constant there).
// Keyed by initializer name; a weight read by several nodes keeps its first use,
// except that a use with an activation (a tied embedding's output layer) wins
// over a Gather of the same layout.
std::map<std::string, WeightUse> find_weight_uses(const Graph& graph);

}  // namespace slmopt
