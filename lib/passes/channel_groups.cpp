#include "passes/channel_groups.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "core/error.hpp"

namespace slmopt::passes {
namespace {

enum class Layout { Conv, Dense };  // channels on axis 1, or on the last axis

const std::set<std::string> kUnary = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Gelu", "Elu", "Selu", "HardSigmoid",
                                      "HardSwish", "Softplus", "Identity", "Dropout", "Neg", "Abs", "Erf", "Exp"};
const std::set<std::string> kPool = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"};
const std::set<std::string> kBinary = {"Add", "Sub", "Mul", "Div", "Max", "Min"};

int64_t attr_int(const Node& n, const char* name, int64_t fallback) {
  const Attribute* a = n.find_attribute(name);
  return a ? a->i : fallback;
}

struct UnionFind {
  std::map<std::string, std::string> parent;
  std::string find(const std::string& v) {
    auto it = parent.find(v);
    if (it == parent.end()) return parent[v] = v;
    if (it->second == v) return v;
    return it->second = find(it->second);
  }
  void join(const std::string& a, const std::string& b) { parent[find(a)] = find(b); }
};

// A producer layer: its weight, the axis of its output channels, its bias.
struct Producer {
  const Node* node;
  ChannelSlice weight;
  std::string bias;
  int64_t channels;
  Layout layout;
};

bool producer_of(const Node& n, const Graph& g, Producer& p) {
  if (n.inputs.size() < 2 || n.outputs.size() != 1) return false;
  const NamedTensor* w = g.find_initializer(n.inputs[1]);
  if (!w || w->tensor.dtype() != DType::F32 || w->tensor.is_quantized()) return false;
  const auto& s = w->tensor.shape();
  p.node = &n;
  p.bias = n.inputs.size() > 2 ? n.inputs[2] : "";
  if (n.op_type == "Conv" && attr_int(n, "group", 1) == 1 && s.size() >= 3) {
    p.weight = {w->name, 0};
    p.layout = Layout::Conv;
  } else if (n.op_type == "MatMul" && s.size() == 2) {
    p.weight = {w->name, 1};
    p.layout = Layout::Dense;
  } else if (n.op_type == "Gemm" && s.size() == 2 && attr_int(n, "transA", 0) == 0) {
    p.weight = {w->name, attr_int(n, "transB", 0) ? 0 : 1};
    p.layout = Layout::Dense;
  } else {
    return false;
  }
  p.channels = s[static_cast<size_t>(p.weight.axis)];
  return true;
}

// The axis of a constant operand's shape that holds the channels, given the
// value's rank is unknown: -1 for a scalar (nothing to cut), -2 when it does
// not broadcast channel by channel.
int64_t constant_channel_axis(const Tensor& t, Layout layout, int64_t channels) {
  if (t.numel() == 1) return -1;
  const auto& s = t.shape();
  int64_t axis = -2, big = 0;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] != 1) {
      ++big;
      axis = static_cast<int64_t>(i);
    }
  if (big != 1 || s[static_cast<size_t>(axis)] != channels) return -2;
  const auto trailing = static_cast<int64_t>(s.size()) - 1 - axis;  // dims after the channel one
  if (layout == Layout::Dense && trailing != 0) return -2;
  if (layout == Layout::Conv && trailing == 0 && s.size() > 1) return -2;  // [1, C] would meet the last spatial axis
  if (layout == Layout::Conv && s.size() == 1) return -2;                  // [C] broadcasts on the last axis
  return axis;
}

}  // namespace

std::vector<ChannelGroup> find_channel_groups(const Graph& g) {
  std::map<std::string, std::vector<const Node*>> readers;
  std::map<std::string, const Node*> writer;
  for (const Node& n : g.nodes) {
    for (const auto& in : n.inputs)
      if (!in.empty()) readers[in].push_back(&n);
    for (const auto& out : n.outputs) writer[out] = &n;
  }
  std::set<std::string> graph_outputs;
  for (const auto& o : g.outputs) graph_outputs.insert(o.name);
  auto is_const = [&](const std::string& v) { return g.find_initializer(v) != nullptr; };

  // Values joined through channel-wise ops.
  UnionFind uf;
  std::map<std::string, Producer> producers;  // by output value
  for (const Node& n : g.nodes) {
    Producer p;
    if (producer_of(n, g, p)) producers[n.outputs[0]] = p;
  }
  for (const Node& n : g.nodes) {
    if (n.outputs.empty() || n.inputs.empty()) continue;
    if (kUnary.count(n.op_type) || kPool.count(n.op_type) || n.op_type == "BatchNormalization" ||
        (n.op_type == "Clip" && std::all_of(n.inputs.begin() + 1, n.inputs.end(), [&](const std::string& v) { return v.empty() || is_const(v); })))
      uf.join(n.outputs[0], n.inputs[0]);
    else if (kBinary.count(n.op_type) && n.inputs.size() == 2)
      for (const auto& in : n.inputs)
        if (!is_const(in)) uf.join(n.outputs[0], in);
  }
  std::map<std::string, std::vector<std::string>> members;
  for (const auto& [value, p] : producers) members[uf.find(value)];
  for (const auto& [value, parent] : uf.parent) {
    (void)parent;
    auto root = uf.find(value);
    if (members.count(root)) members[root].push_back(value);
  }
  for (const auto& [value, p] : producers)
    if (std::find(members[uf.find(value)].begin(), members[uf.find(value)].end(), value) == members[uf.find(value)].end())
      members[uf.find(value)].push_back(value);

  std::vector<ChannelGroup> groups;
  for (auto& [root, values] : members) {
    ChannelGroup grp;
    std::sort(values.begin(), values.end());
    grp.values = values;
    std::set<std::string> in_group(values.begin(), values.end());
    std::optional<Layout> layout;
    auto fail = [&](const std::string& why) {
      if (grp.why_not.empty()) grp.why_not = why;
    };
    for (const auto& v : values) {
      auto pr = producers.find(v);
      if (pr != producers.end()) {
        const Producer& p = pr->second;
        if (grp.channels && grp.channels != p.channels) fail("layers of different widths meet");
        if (layout && *layout != p.layout) fail("Conv and MatMul channels meet");
        grp.channels = p.channels;
        layout = p.layout;
        grp.producers.push_back(p.weight);
        if (!p.bias.empty()) {
          const NamedTensor* b = g.find_initializer(p.bias);
          if (!b || b->tensor.numel() != p.channels) fail("node '" + p.node->name + "' has a bias that is not one value per channel");
          else grp.biases.push_back({p.bias, b->tensor.rank() - 1});
        }
      } else {
        auto w = writer.find(v);
        if (w == writer.end()) {
          fail("value '" + v + "' is a graph input");
        } else {
          const std::string& op = w->second->op_type;
          if (!kUnary.count(op) && !kPool.count(op) && !kBinary.count(op) && op != "BatchNormalization" && op != "Clip")
            fail(op + " node '" + w->second->name + "' feeds the channels");
        }
      }
      if (graph_outputs.count(v)) fail("value '" + v + "' is a graph output");
    }
    if (grp.producers.empty()) continue;
    // Every reader of every value must be channel-wise, or a layer that reads channels.
    for (const auto& v : values) {
      for (const Node* n : readers[v]) {
        const std::string& op = n->op_type;
        const std::string where = op + " node '" + n->name + "'";
        if (in_group.count(n->outputs.empty() ? "" : n->outputs[0]) && (kUnary.count(op) || kPool.count(op) || kBinary.count(op) ||
                                                                       op == "BatchNormalization" || op == "Clip")) {
          if (kPool.count(op) && layout == Layout::Dense) fail(where + " pools a dense layer's channels");
          if (op == "BatchNormalization") {
            if (layout != Layout::Conv) fail(where + " on a dense layer");
            for (size_t i = 1; i < n->inputs.size() && i <= 4; ++i) {
              const NamedTensor* t = g.find_initializer(n->inputs[i]);
              if (!t || t->tensor.numel() != grp.channels) fail(where + " has parameters that are not constants per channel");
              else grp.params.push_back({t->name, 0});
            }
          }
          if (kBinary.count(op))
            for (const auto& in : n->inputs) {
              if (in_group.count(in)) continue;
              const NamedTensor* t = g.find_initializer(in);
              if (!t) {
                fail(where + " combines the channels with another value");
                continue;
              }
              const int64_t axis = constant_channel_axis(t->tensor, *layout, grp.channels);
              if (axis == -2) fail(where + " has a constant that is not per channel");
              else if (axis >= 0) grp.params.push_back({t->name, axis});
            }
          continue;
        }
        const NamedTensor* w = n->inputs.size() > 1 ? g.find_initializer(n->inputs[1]) : nullptr;
        const bool reads_as_input = !n->inputs.empty() && n->inputs[0] == v && w && w->tensor.dtype() == DType::F32 && !w->tensor.is_quantized();
        if (reads_as_input && op == "Conv" && layout == Layout::Conv && attr_int(*n, "group", 1) == 1 && w->tensor.rank() >= 3 &&
            w->tensor.shape()[1] == grp.channels) {
          grp.consumers.push_back({w->name, 1});
        } else if (reads_as_input && op == "MatMul" && layout == Layout::Dense && w->tensor.rank() == 2 && w->tensor.shape()[0] == grp.channels) {
          grp.consumers.push_back({w->name, 0});
        } else if (reads_as_input && op == "Gemm" && layout == Layout::Dense && w->tensor.rank() == 2 && attr_int(*n, "transA", 0) == 0) {
          const int64_t axis = attr_int(*n, "transB", 0) ? 1 : 0;
          if (w->tensor.shape()[static_cast<size_t>(axis)] != grp.channels) fail(where + " reads another width");
          grp.consumers.push_back({w->name, axis});
        } else {
          fail(where + " does not treat channels one by one");
          continue;
        }
        grp.consumer_nodes.push_back(n->name);
      }
    }
    // Every constant cut must belong to this group alone.
    std::vector<ChannelSlice> all = grp.producers;
    all.insert(all.end(), grp.biases.begin(), grp.biases.end());
    all.insert(all.end(), grp.params.begin(), grp.params.end());
    all.insert(all.end(), grp.consumers.begin(), grp.consumers.end());
    for (const auto& s : all) {
      size_t uses = 0;
      for (const Node& n : g.nodes) uses += static_cast<size_t>(std::count(n.inputs.begin(), n.inputs.end(), s.tensor));
      if (uses != 1) fail("'" + s.tensor + "' is read by " + std::to_string(uses) + " inputs");
    }
    if (grp.consumers.empty()) fail("no layer reads the channels");
    groups.push_back(std::move(grp));
  }
  return groups;
}

std::vector<float> channel_slice(const Tensor& t, int64_t axis, int64_t c) {
  const auto& s = t.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= s[static_cast<size_t>(i)];
  for (size_t i = static_cast<size_t>(axis) + 1; i < s.size(); ++i) inner *= s[i];
  const int64_t n = s[static_cast<size_t>(axis)];
  std::vector<float> out;
  out.reserve(static_cast<size_t>(outer * inner));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) out.push_back(t.data<float>()[(o * n + c) * inner + i]);
  return out;
}

namespace {

Tensor keep_along(const Tensor& t, int64_t axis, const std::vector<int64_t>& keep) {
  auto shape = t.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= shape[static_cast<size_t>(i)];
  for (size_t i = static_cast<size_t>(axis) + 1; i < shape.size(); ++i) inner *= shape[i];
  const int64_t n = shape[static_cast<size_t>(axis)];
  shape[static_cast<size_t>(axis)] = static_cast<int64_t>(keep.size());
  Tensor out(t.dtype(), shape);
  const size_t elem = dtype_size(t.dtype());
  const auto* src = static_cast<const uint8_t*>(t.bytes());
  auto* dst = static_cast<uint8_t*>(out.mutable_bytes());
  size_t at = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c : keep) {
      const size_t bytes = static_cast<size_t>(inner) * elem;
      std::copy_n(src + static_cast<size_t>((o * n + c) * inner) * elem, bytes, dst + at);
      at += bytes;
    }
  return out;
}

}  // namespace

void shrink_group(Graph& graph, const ChannelGroup& group, const std::vector<int64_t>& keep) {
  std::map<std::string, int64_t> axes;
  for (const auto* list : {&group.producers, &group.biases, &group.params, &group.consumers})
    for (const auto& s : *list) axes[s.tensor] = s.axis;
  for (auto& init : graph.initializers) {
    auto it = axes.find(init.name);
    if (it != axes.end()) init.tensor = keep_along(init.tensor, it->second, keep);
  }
  // Shapes recorded for the group's values no longer hold.
  std::set<std::string> values(group.values.begin(), group.values.end());
  std::erase_if(graph.value_info, [&](const ValueInfo& v) { return values.count(v.name) > 0; });
}

}  // namespace slmopt::passes
