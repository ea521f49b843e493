#include "passes/graph_edit.hpp"

#include <algorithm>

namespace slmopt::passes {

void set_input(Graph& g, Node& n, size_t index, const std::string& name, Tensor value) {
  size_t readers = 0;
  for (const Node& other : g.nodes) readers += static_cast<size_t>(std::count(other.inputs.begin(), other.inputs.end(), n.inputs[index]));
  for (auto& init : g.initializers)
    if (readers == 1 && init.name == n.inputs[index]) {
      init.tensor = std::move(value);
      return;
    }
  g.initializers.push_back({name, std::move(value), {}});
  n.inputs[index] = name;
}

Tensor take_rows(const Tensor& t, const std::vector<int64_t>& rows) {
  const int64_t width = t.rank() > 1 ? t.numel() / t.shape()[0] : 1;
  std::vector<int64_t> shape = t.shape();
  shape[0] = static_cast<int64_t>(rows.size());
  Tensor out(DType::F32, shape);
  for (size_t i = 0; i < rows.size(); ++i)
    std::copy_n(t.data<float>() + rows[i] * width, width, out.mutable_data<float>() + static_cast<int64_t>(i) * width);
  return out;
}

Tensor take_cols(const Tensor& t, const std::vector<int64_t>& cols) {
  const int64_t rows = t.shape()[0], width = t.shape()[1], n = static_cast<int64_t>(cols.size());
  Tensor out(DType::F32, {rows, n});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) out.mutable_data<float>()[r * n + i] = t.data<float>()[r * width + cols[static_cast<size_t>(i)]];
  return out;
}

void drop_unread(Graph& g, const std::set<std::string>& replaced) {
  std::set<std::string> read;
  for (const Node& n : g.nodes) read.insert(n.inputs.begin(), n.inputs.end());
  for (const auto& v : g.outputs) read.insert(v.name);
  const auto dead = [&](const std::string& name) { return replaced.count(name) && !read.count(name); };
  std::erase_if(g.initializers, [&](const NamedTensor& t) { return dead(t.name); });
  // Exporters write shapes as Constant nodes; other runtimes warn about unread ones.
  std::erase_if(g.nodes, [&](const Node& n) { return n.op_type == "Constant" && n.outputs.size() == 1 && dead(n.outputs[0]); });
}

}  // namespace slmopt::passes
