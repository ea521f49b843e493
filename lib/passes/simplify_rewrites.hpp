// The rewrites `simplify` chains (passes/simplify.hpp), one file each, and
// the index of the main graph's values they share. Each returns how many
// nodes (or values) it changed.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "core/ir.hpp"
#include "passes/simplify.hpp"

namespace slmopt::passes::simplify_detail {

// Who reads and who writes each value; rebuilt after a rewrite changes them.
struct ValueIndex {
  explicit ValueIndex(const Model& model);
  // A constant every reader may rely on: a float/int initializer of the main
  // graph (not quantized codes) that no caller can override by feeding an
  // input of its name; nullptr otherwise.
  const Tensor* constant(const std::string& name) const;
  int readers(const std::string& name) const;  // node inputs and graph outputs of every graph
  bool is_output(const std::string& name) const { return outputs.count(name) > 0; }  // of the main graph
  // `base`, or `base_1`, `base_2`, ... so it names no existing value; reserved.
  std::string fresh_name(const std::string& base);

  const Model& model;
  std::unordered_map<std::string, int> read_count;
  std::unordered_set<std::string> outputs;
  std::unordered_map<std::string, size_t> producer;  // main-graph node index by output name
  std::unordered_map<std::string, size_t> constants;  // main-graph initializer index by name
  std::unordered_set<std::string> names;
};

bool default_domain(const Node& n);
std::unordered_map<std::string, ValueInfo> value_types(const Model& model);

int64_t bind_input_shapes(Model& model, const SimplifyOptions& options);
int64_t fold_constants(Model& model, uint64_t max_folded_bytes);
int64_t fold_shapes(Model& model);
// Identity/Dropout, same-type Cast, same-shape Reshape (counted apart).
void remove_no_ops(Model& model, SimplifyReport& report);
int64_t merge_reshapes(Model& model);
int64_t fold_batch_norms(Model& model);
int64_t fuse_activations(Model& model);
int64_t remove_dead_nodes(Model& model);

}  // namespace slmopt::passes::simplify_detail
