#include "passes/simplify.hpp"

#include <set>
#include <unordered_set>

#include "passes/simplify_rewrites.hpp"

namespace slmopt::passes {
namespace {

using namespace simplify_detail;

int64_t node_count(const Model& m) {
  int64_t nodes = 0;
  for_each_graph(m.graph, [&](const Graph& g, int) { nodes += static_cast<int64_t>(g.nodes.size()); });
  return nodes;
}

int64_t initializer_bytes(const Model& m) {
  int64_t bytes = 0;
  for (const auto& t : m.graph.initializers) bytes += static_cast<int64_t>(t.tensor.nbytes());
  return bytes;
}

// Before IR 4 every initializer is also a graph input; folded values join them.
void list_initializers_as_inputs(Model& m) {
  if (m.ir_version >= 4) return;
  std::unordered_set<std::string> listed;
  for (const auto& v : m.graph.inputs) listed.insert(v.name);
  for (const auto& t : m.graph.initializers) {
    if (listed.count(t.name)) continue;
    ValueInfo v{t.name, t.tensor.dtype(), std::vector<Dim>{}, {}, {}, {}};
    for (int64_t d : t.tensor.shape()) v.shape->push_back(Dim{d, {}, {}});
    m.graph.inputs.push_back(std::move(v));
  }
}

// value_info of values that no longer exist (folded, renamed) would mislead readers.
void drop_stale_value_info(Graph& g) {
  std::unordered_set<std::string> computed;
  for (const auto& n : g.nodes) computed.insert(n.outputs.begin(), n.outputs.end());
  std::erase_if(g.value_info, [&](const ValueInfo& v) { return !computed.count(v.name); });
}

}  // namespace

bool SimplifyReport::changed() const {
  return constants.changed() || bound_inputs + folded_nodes + folded_shapes + identities + casts + reshapes +
                                        batch_norms + fused_activations + dead_nodes + unused_initializers >
                                    0;
}

std::vector<std::string> SimplifyReport::lines() const {
  std::vector<std::string> out = constants.lines();
  auto add = [&](int64_t n, const std::string& what) {
    if (n > 0) out.push_back(std::to_string(n) + " " + what);
  };
  add(bound_inputs, "input shapes bound");
  add(folded_nodes, "nodes computed once (constant folding)");
  add(folded_shapes, "Shape/Size nodes of known shapes folded");
  add(identities, "Identity/Dropout nodes removed");
  add(casts, "Casts to the same type removed");
  add(reshapes, "Reshapes removed (same shape, or of a Reshape)");
  add(batch_norms, "BatchNormalizations folded into their Conv");
  add(fused_activations, "activations fused into their Conv (com.microsoft FusedConv)");
  add(dead_nodes, "nodes nobody reads removed");
  add(unused_initializers, "unread initializers removed");
  return out;
}

SimplifyReport simplify(Model& model, const SimplifyOptions& options) {
  SimplifyReport r;
  r.nodes_before = node_count(model);
  r.constants = runtime::constants_to_initializers(model);
  r.initializer_bytes_before = initializer_bytes(model);  // Constant nodes and body initializers counted
  std::unordered_set<std::string> read_before;
  for_each_graph(model.graph, [&](const Graph& g, int) {
    for (const auto& n : g.nodes) read_before.insert(n.inputs.begin(), n.inputs.end());
    for (const auto& v : g.outputs) read_before.insert(v.name);
  });
  std::unordered_set<std::string> existed;
  for (const auto& t : model.graph.initializers) existed.insert(t.name);
  r.bound_inputs = bind_input_shapes(model, options);
  // Folding a shape makes constants, folding constants makes new shapes known.
  for (int round = 0; round < 16; ++round) {
    const int64_t nodes = fold_constants(model, options.max_folded_bytes);
    const int64_t shapes = fold_shapes(model);
    r.folded_nodes += nodes;
    r.folded_shapes += shapes;
    if (nodes + shapes == 0) break;
  }
  remove_no_ops(model, r);
  r.reshapes += merge_reshapes(model);
  if (options.fold_batch_norm) r.batch_norms = fold_batch_norms(model);
  if (options.fuse_activations) r.fused_activations = fuse_activations(model);
  r.dead_nodes = remove_dead_nodes(model);
  std::set<std::string> candidates;
  for (const auto& t : model.graph.initializers)
    if (!options.keep_unread_initializers || read_before.count(t.name) || !existed.count(t.name))
      candidates.insert(t.name);
  r.unused_initializers = runtime::remove_unused_initializers(model, candidates);
  list_initializers_as_inputs(model);
  drop_stale_value_info(model.graph);
  r.nodes_after = node_count(model);
  r.initializer_bytes_after = initializer_bytes(model);
  return r;
}

}  // namespace slmopt::passes
