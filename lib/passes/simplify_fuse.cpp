// BatchNormalization folded into the Conv before it; an activation fused
// into the Conv before it (com.microsoft FusedConv).
#include <cmath>
#include <limits>

#include "passes/simplify_rewrites.hpp"

namespace slmopt::passes::simplify_detail {
namespace {

const Tensor* f32_constant(const ValueIndex& index, const std::vector<std::string>& inputs, size_t i) {
  if (i >= inputs.size() || inputs[i].empty()) return nullptr;
  const Tensor* t = index.constant(inputs[i]);
  return t && t->dtype() == DType::F32 ? t : nullptr;
}

int64_t attr_int(const Node& n, const std::string& name, int64_t fallback) {
  const Attribute* a = n.find_attribute(name);
  return a ? a->i : fallback;
}

float attr_float(const Node& n, const std::string& name, float fallback) {
  const Attribute* a = n.find_attribute(name);
  return a ? a->f : fallback;
}

// The node that alone reads `value` (a value no graph returns), or nullptr.
Node* only_reader(Graph& g, const ValueIndex& index, const std::string& value,
                  const std::unordered_map<std::string, size_t>& reader) {
  if (index.readers(value) != 1 || index.is_output(value)) return nullptr;
  auto it = reader.find(value);
  return it == reader.end() ? nullptr : &g.nodes[it->second];
}

std::unordered_map<std::string, size_t> reader_of(const Graph& g) {
  std::unordered_map<std::string, size_t> reader;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& in : g.nodes[i].inputs) reader[in] = i;
  return reader;
}

// Gives input `i` of `n` the value `t`: in place when `n` is its only reader.
void replace_constant(Graph& g, ValueIndex& index, Node& n, size_t i, const std::string& base, Tensor t) {
  if (i < n.inputs.size() && !n.inputs[i].empty() && index.readers(n.inputs[i]) == 1) {
    g.initializers[index.constants.at(n.inputs[i])].tensor = std::move(t);
    return;
  }
  const std::string name = index.fresh_name(base);
  g.initializers.push_back({name, std::move(t), {}});
  if (n.inputs.size() <= i) n.inputs.resize(i + 1);
  n.inputs[i] = name;
}

}  // namespace

int64_t fold_batch_norms(Model& model) {
  Graph& g = model.graph;
  ValueIndex index(model);
  const auto reader = reader_of(g);
  std::vector<bool> removed(g.nodes.size(), false);
  int64_t folded = 0;
  for (size_t ci = 0; ci < g.nodes.size(); ++ci) {
    Node& conv = g.nodes[ci];
    if (!default_domain(conv) || conv.op_type != "Conv" || conv.outputs.size() != 1) continue;
    Node* bn = only_reader(g, index, conv.outputs[0], reader);
    if (!bn || !default_domain(*bn) || bn->op_type != "BatchNormalization" || bn->inputs.size() < 5 ||
        bn->inputs[0] != conv.outputs[0] || attr_int(*bn, "training_mode", 0) != 0 || attr_int(*bn, "spatial", 1) != 1)
      continue;
    bool extra_outputs = false;
    for (size_t k = 1; k < bn->outputs.size(); ++k) extra_outputs = extra_outputs || !bn->outputs[k].empty();
    const Tensor* w = f32_constant(index, conv.inputs, 1);
    const bool has_bias = conv.inputs.size() > 2 && !conv.inputs[2].empty();
    const Tensor* b = has_bias ? f32_constant(index, conv.inputs, 2) : nullptr;
    const Tensor *scale = f32_constant(index, bn->inputs, 1), *beta = f32_constant(index, bn->inputs, 2),
                 *mean = f32_constant(index, bn->inputs, 3), *var = f32_constant(index, bn->inputs, 4);
    if (extra_outputs || !w || w->rank() < 3 || (has_bias && !b) || !scale || !beta || !mean || !var) continue;
    const int64_t channels = w->shape()[0], per_channel = w->numel() / std::max<int64_t>(channels, 1);
    if (scale->numel() != channels || beta->numel() != channels || mean->numel() != channels ||
        var->numel() != channels || (b && b->numel() != channels))
      continue;
    const double eps = attr_float(*bn, "epsilon", 1e-5f);
    Tensor w2(DType::F32, w->shape()), b2(DType::F32, {channels});
    for (int64_t c = 0; c < channels; ++c) {
      const double s = scale->data<float>()[c] / std::sqrt(static_cast<double>(var->data<float>()[c]) + eps);
      for (int64_t k = 0; k < per_channel; ++k)
        w2.mutable_data<float>()[c * per_channel + k] = static_cast<float>(w->data<float>()[c * per_channel + k] * s);
      const double bias = b ? b->data<float>()[c] : 0.0;
      b2.mutable_data<float>()[c] = static_cast<float>((bias - mean->data<float>()[c]) * s + beta->data<float>()[c]);
    }
    const std::string out = bn->outputs[0];
    replace_constant(g, index, conv, 1, conv.inputs[1] + "_bn", std::move(w2));
    replace_constant(g, index, conv, 2, out + "_bias", std::move(b2));
    conv.outputs[0] = out;
    removed[reader.at(bn->inputs[0])] = true;
    ++folded;
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
  return folded;
}

int64_t fuse_activations(Model& model) {
  Graph& g = model.graph;
  const ValueIndex index(model);
  const auto reader = reader_of(g);
  int opset = 0;
  for (const auto& o : model.opsets)
    if (o.domain.empty() || o.domain == "ai.onnx") opset = static_cast<int>(o.version);
  std::vector<bool> removed(g.nodes.size(), false);
  int64_t fused = 0;
  for (auto& conv : g.nodes) {
    // ONNX Runtime's FusedConv computes float32 only.
    if (!default_domain(conv) || conv.op_type != "Conv" || conv.outputs.size() != 1 || !f32_constant(index, conv.inputs, 1))
      continue;
    Node* act = only_reader(g, index, conv.outputs[0], reader);
    if (!act || !default_domain(*act) || act->outputs.size() != 1 || act->inputs.empty() ||
        act->inputs[0] != conv.outputs[0])
      continue;
    std::vector<float> params;
    const std::string& op = act->op_type;
    if (op == "LeakyRelu") {
      params = {attr_float(*act, "alpha", 0.01f)};
    } else if (op == "HardSigmoid") {
      params = {attr_float(*act, "alpha", 0.2f), attr_float(*act, "beta", 0.5f)};
    } else if (op == "Clip") {
      float lo = std::numeric_limits<float>::lowest(), hi = std::numeric_limits<float>::max();
      if (opset < 11) {
        lo = attr_float(*act, "min", lo);
        hi = attr_float(*act, "max", hi);
      } else {
        const Tensor* tmin = f32_constant(index, act->inputs, 1);
        const Tensor* tmax = f32_constant(index, act->inputs, 2);
        const bool min_given = act->inputs.size() > 1 && !act->inputs[1].empty();
        const bool max_given = act->inputs.size() > 2 && !act->inputs[2].empty();
        if ((min_given && (!tmin || tmin->numel() != 1)) || (max_given && (!tmax || tmax->numel() != 1))) continue;
        if (tmin) lo = tmin->data<float>()[0];
        if (tmax) hi = tmax->data<float>()[0];
      }
      params = {lo, hi};
    } else if (op != "Relu" && op != "Sigmoid" && op != "Tanh") {
      continue;
    }
    Attribute activation;
    activation.name = "activation";
    activation.type = AttrType::String;
    activation.s = op;
    conv.attributes.push_back(std::move(activation));
    if (!params.empty()) {
      Attribute p;
      p.name = "activation_params";
      p.type = AttrType::Floats;
      p.floats = params;
      conv.attributes.push_back(std::move(p));
    }
    conv.domain = "com.microsoft";
    conv.op_type = "FusedConv";
    conv.outputs[0] = act->outputs[0];
    removed[reader.at(act->inputs[0])] = true;
    ++fused;
  }
  if (fused == 0) return 0;
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
  bool imported = false;
  for (const auto& o : model.opsets) imported = imported || o.domain == "com.microsoft";
  if (!imported) model.opsets.push_back({"com.microsoft", 1});
  return fused;
}

}  // namespace slmopt::passes::simplify_detail
