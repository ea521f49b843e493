// Small edits of a graph's constants that structured pruning makes: give a
// node's input a new value, take rows or columns of a 2-D weight, and drop
// the constants no node reads any more.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "core/ir.hpp"

namespace slmopt::passes {

// Gives input `index` of n a new value: in place when n is its only reader
// (a layer's weights keep their names), else as a new initializer `name`
// (shape constants are often shared between layers).
void set_input(Graph& g, Node& n, size_t index, const std::string& name, Tensor value);

// Rows `rows` of an f32 tensor along its first axis (any rank).
Tensor take_rows(const Tensor& t, const std::vector<int64_t>& rows);
// Columns `cols` of a 2-D f32 tensor.
Tensor take_cols(const Tensor& t, const std::vector<int64_t>& cols);

// The `replaced` constants (initializers or Constant nodes) that no node
// reads any more, removed.
void drop_unread(Graph& g, const std::set<std::string>& replaced);

}  // namespace slmopt::passes
