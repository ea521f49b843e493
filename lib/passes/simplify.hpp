// `slmopt simplify`: the graph rewrites that make a model smaller and faster
// to run without changing what it computes, as onnxsim and ONNX Runtime's
// graph optimizer do them:
// - every weight an initializer (runtime::constants_to_initializers);
// - input shapes bound (`name=1,3,224,224`, or a symbolic dim `batch=1`);
// - constant folding: a node whose inputs are all constants is computed once
//   by the runtime's own kernel (so bit for bit what the runtime computes);
// - shape folding: Shape/Size of a value whose shape ONNX's inference knows;
// - no-ops removed: Identity, inference Dropout, Cast to the same type,
//   Reshape to the same shape, Reshape of a Reshape;
// - dead nodes and unread initializers removed;
// - BatchNormalization after a Conv folded into its weights and bias (not
//   bit-exact: the products round differently);
// - optionally, a Relu/LeakyRelu/Sigmoid/Tanh/Clip/HardSigmoid fused into the
//   Conv before it (com.microsoft FusedConv, which ONNX Runtime also runs).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/ir.hpp"
#include "runtime/constants.hpp"

namespace slmopt::passes {

struct SimplifyOptions {
  std::map<std::string, std::vector<int64_t>> input_shapes;  // graph input -> its dims
  std::map<std::string, int64_t> dims;                        // symbolic dim ("batch") -> size
  bool fold_batch_norm = true;
  bool fuse_activations = false;  // writes com.microsoft FusedConv nodes
  // A folded value larger than this and than its share of the constants it
  // frees (those only folded nodes read) stays computed: ConstantOfShape,
  // Expand, Tile, or a slice of a weight used whole elsewhere would grow the file.
  uint64_t max_folded_bytes = 4096;
  // Initializers no node read before the rewrites stay (a blob may carry
  // tensors for the device on purpose); those the rewrites made unread go.
  bool keep_unread_initializers = false;
};

struct SimplifyReport {
  runtime::ConstantsReport constants;
  int64_t bound_inputs = 0;
  int64_t folded_nodes = 0;   // nodes computed once
  int64_t folded_shapes = 0;  // Shape/Size nodes of known shapes
  int64_t identities = 0;     // Identity and inference Dropout
  int64_t casts = 0;          // Cast to the type it already has
  int64_t reshapes = 0;       // Reshape to the same shape, or of a Reshape
  int64_t batch_norms = 0;    // folded into the Conv before them
  int64_t fused_activations = 0;
  int64_t dead_nodes = 0;
  int64_t unused_initializers = 0;
  int64_t nodes_before = 0, nodes_after = 0;  // in every graph (If/Loop/Scan bodies too)
  int64_t initializer_bytes_before = 0, initializer_bytes_after = 0;

  bool changed() const;
  // Whether the model computes bit for bit what it did (all but BN folding).
  bool exact() const { return batch_norms == 0; }
  // "12 nodes computed once (constant folding)", one line per kind of change.
  std::vector<std::string> lines() const;
};

// How far one output of the simplified model is from the original's, over samples.
struct OutputDifference {
  std::string name;
  bool identical = true;  // every sample bit for bit
  double max_abs = 0;     // largest |after - before| (float outputs)
  double rel_l2 = 0;      // largest ||after - before|| / ||before|| over samples
};

// Runs `before` and `after` on every sample (inputs by name) and compares
// their outputs. Errors of `before`'s run propagate (the caller decides
// whether an unrunnable sample means "not checked").
std::vector<OutputDifference> compare_runs(const Model& before, const Model& after,
                                           const std::vector<std::map<std::string, Tensor>>& samples);

// Rewrites `model` in place. Error(Usage) for an input shape that names no
// input or contradicts the declared one.
SimplifyReport simplify(Model& model, const SimplifyOptions& options);

}  // namespace slmopt::passes
