// One place for every constant tensor, wherever an exporter put it. Weights
// arrive as initializers of the main graph, as Constant nodes (PaddlePaddle's
// and spox's exporters write every weight so), as initializers or Constant
// nodes inside If/Loop/Scan bodies (PyTorch's scripted control flow), or
// behind a view of a constant (Identity, Cast, Transpose, Reshape, Squeeze,
// Unsqueeze, Flatten). This pass turns all of them into initializers of the
// main graph, read directly by the nodes that used them, so that every pass
// and `inspect` find a weight the same way (find_weight_uses) in any model.
// The model computes the same values bit for bit.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/ir.hpp"

namespace slmopt::runtime {

struct ConstantsReport {
  int64_t constant_nodes = 0;         // Constant nodes that became initializers
  int64_t subgraph_initializers = 0;  // moved out of If/Loop/Scan bodies
  int64_t folded_views = 0;           // views of constants computed once
  int64_t identities = 0;             // Identity of a constant: readers read the constant
  int64_t unused_removed = 0;         // sources of folded views no node reads any more
  bool changed() const {
    return constant_nodes + subgraph_initializers + folded_views + identities + unused_removed > 0;
  }
  // "12 Constant nodes -> initializers", one line per kind of change.
  std::vector<std::string> lines() const;
};

// Whether a node whose inputs are all constants may be computed once and its
// result stored (simplify's constant folding, the session's precomputation):
// not random draws, not QuantizeLinear/DequantizeLinear (folding the
// dequantization of int8 weights would undo a QDQ model), not QLinear
// products (their rounding is a setting of the run), not nodes with bodies,
// only the default domain.
bool computable_once(const Node& n);

// Rewrites `model` in place into the form above. A view is computed only
// when its result costs no more storage than its source (the source has no
// other reader, or the view is small), so the model never grows by more
// than the small views. Constants a body returns as its own output stay.
ConstantsReport constants_to_initializers(Model& model);

// The initializers named in `candidates` that no node of any graph reads and
// no graph returns, removed (a pass's leftovers: the source of a folded view,
// a weight replaced by its int8 codes); returns how many. Initializers the
// graph also lists as inputs (overridable defaults) stay, and so do unread
// tensors the pass did not touch (a checkpoint may carry them on purpose).
int64_t remove_unused_initializers(Model& model, const std::set<std::string>& candidates);

}  // namespace slmopt::runtime
