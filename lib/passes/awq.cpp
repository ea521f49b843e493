#include "passes/awq.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.hpp"
#include "passes/layer_weight.hpp"
#include "quant/hessian.hpp"
#include "quant/quantize_weight.hpp"

namespace slmopt::passes {
namespace {

constexpr int kAlphaSteps = 20;  // alpha = 0, 0.05, ..., 0.95 as the AWQ paper

// Whether n is the layer that reads t's weight (node names may be empty).
bool reads_weight(const Node& n, const AwqTarget& t) {
  return n.op_type == t.use.op && std::find(n.inputs.begin(), n.inputs.end(), t.weight) != n.inputs.end();
}

// Elements of each input channel in a weight row: the kernel size for Conv.
int64_t per_channel(const Tensor& w, const WeightUse& use) {
  if (use.op != "Conv") return 1;
  int64_t k = 1;
  for (int64_t i = 2; i < w.rank(); ++i) k *= w.shape()[static_cast<size_t>(i)];
  return k;
}

// The output error of quantizing w after scaling its input channels by s.
double scaled_loss(const Tensor& w, const AwqTarget& t, const std::vector<float>& s, int64_t k,
                   const calib::InputStats& st) {
  int64_t rows = 0, cols = 0;
  const std::vector<float> m = quant::weight_rows(w, axis_of(t.use), rows, cols);
  std::vector<float> scaled = m, importance(static_cast<size_t>(cols));
  std::vector<float> ms(static_cast<size_t>(cols), 0.0f);
  for (int64_t g = 0; g < st.groups; ++g) {
    const auto mg = st.mean_square(g);
    for (int64_t j = 0; j < cols; ++j) ms[static_cast<size_t>(j)] += mg[static_cast<size_t>(j)];
  }
  for (int64_t j = 0; j < cols; ++j) {
    const float sj = s[static_cast<size_t>(j / k)];
    importance[static_cast<size_t>(j)] = ms[static_cast<size_t>(j)] / (sj * sj);
    for (int64_t r = 0; r < rows; ++r) scaled[static_cast<size_t>(r * cols + j)] *= sj;
  }
  quant::QuantizeOptions o;
  o.search = true;
  o.importance = importance.data();
  const Tensor q = quant::quantize_weight(Tensor::from_values<float>(DType::F32, {rows, cols}, scaled),
                                          quant::InputAxis::Rest, *t.spec.scheme, t.spec.params, o);
  const Tensor back = quant::dequantize(q);
  std::vector<float> b(back.data<float>(), back.data<float>() + back.numel());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) b[static_cast<size_t>(r * cols + j)] /= s[static_cast<size_t>(j / k)];
  return quant::hessian_error(m.data(), b.data(), rows, cols, st.gram.data(), st.groups);
}

// A copy of float tensor t with element e multiplied by factor(channel_of(e)).
template <class ChannelOf>
Tensor rescaled(const Tensor& t, const std::vector<float>& factor, ChannelOf channel_of) {
  Tensor out(DType::F32, t.shape());
  for (int64_t e = 0; e < t.numel(); ++e)
    out.mutable_data<float>()[e] = t.data<float>()[e] * factor[static_cast<size_t>(channel_of(e))];
  return out;
}

class GraphEdit {
 public:
  explicit GraphEdit(Graph& g) : g_(g) {}

  std::vector<size_t> readers(const std::string& value) const {
    std::vector<size_t> r;
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      for (const auto& in : g_.nodes[i].inputs)
        if (in == value) {
          r.push_back(i);
          break;
        }
    return r;
  }
  bool is_output(const std::string& value) const {
    for (const auto& o : g_.outputs)
      if (o.name == value) return true;
    return false;
  }
  const Node* producer(const std::string& value) const {
    for (const Node& n : g_.nodes)
      for (const auto& o : n.outputs)
        if (o == value) return &n;
    return nullptr;
  }
  // The float initializer `name` when `node` is its only reader.
  NamedTensor* private_weight(const std::string& name, const Node& node) {
    for (auto& init : g_.initializers)
      if (init.name == name) {
        const auto r = readers(name);
        if (r.size() != 1 || &g_.nodes[r[0]] != &node || init.tensor.dtype() != DType::F32 || init.tensor.is_quantized())
          return nullptr;
        return &init;
      }
    return nullptr;
  }
  bool has_subgraphs() const {
    for (const Node& n : g_.nodes)
      for (const auto& a : n.attributes)
        if (!a.graphs.empty()) return true;
    return false;
  }
  std::string fresh_name(const std::string& base) const {
    std::string name = base;
    for (int i = 1; taken(name); ++i) name = base + "_" + std::to_string(i);
    return name;
  }

 private:
  bool taken(const std::string& name) const {
    if (g_.find_initializer(name)) return true;
    for (const Node& n : g_.nodes) {
      if (n.name == name) return true;
      for (const auto& o : n.outputs)
        if (o == name) return true;
    }
    for (const auto& i : g_.inputs)
      if (i.name == name) return true;
    return false;
  }
  Graph& g_;
};

// Divides output channel c of the op producing `value` by s[c]; the node's
// name, or "" when the graph does not allow it. `conv` says whether channels
// are axis 1 (Conv consumers) or the last axis (MatMul/Gemm consumers).
std::string fold_into_producer(Graph& g, std::string value, const std::vector<float>& s, bool conv) {
  GraphEdit edit(g);
  if (edit.has_subgraphs()) return "";
  const int64_t c = static_cast<int64_t>(s.size());
  std::vector<float> inv(s.size());
  for (size_t i = 0; i < s.size(); ++i) inv[i] = 1.0f / s[i];
  for (;;) {
    const Node* p = edit.producer(value);
    if (!p || edit.is_output(value)) return "";
    const bool pass_through = p->op_type == "Relu" || p->op_type == "LeakyRelu" || (conv && p->op_type == "MaxPool");
    if (pass_through) {
      if (p->outputs.size() != 1 || p->inputs.empty() || edit.readers(p->inputs[0]).size() != 1) return "";
      value = p->inputs[0];
      continue;
    }
    if (!p->domain.empty() && p->domain != "ai.onnx") return "";
    const Node& node = *p;
    if (conv && node.op_type == "Conv") {
      NamedTensor* w = node.inputs.size() > 1 ? edit.private_weight(node.inputs[1], node) : nullptr;
      if (!w || w->tensor.rank() < 1 || w->tensor.shape()[0] != c) return "";
      NamedTensor* b = node.inputs.size() > 2 && !node.inputs[2].empty() ? edit.private_weight(node.inputs[2], node) : nullptr;
      if (node.inputs.size() > 2 && !node.inputs[2].empty() && (!b || b->tensor.numel() != c)) return "";
      const int64_t per = w->tensor.numel() / c;
      w->tensor = rescaled(w->tensor, inv, [&](int64_t e) { return e / per; });
      if (b) b->tensor = rescaled(b->tensor, inv, [](int64_t e) { return e; });
      return node.name;
    }
    if (!conv && (node.op_type == "MatMul" || node.op_type == "Gemm")) {
      const Attribute* tb = node.find_attribute("transB");
      const bool trans_b = node.op_type == "Gemm" && tb && tb->i;
      NamedTensor* w = node.inputs.size() > 1 ? edit.private_weight(node.inputs[1], node) : nullptr;
      if (!w || w->tensor.rank() != 2 || w->tensor.shape()[trans_b ? 0 : 1] != c) return "";
      NamedTensor* b = nullptr;
      if (node.op_type == "Gemm" && node.inputs.size() > 2 && !node.inputs[2].empty()) {
        b = edit.private_weight(node.inputs[2], node);
        if (!b || b->tensor.numel() != c || b->tensor.shape().back() != c) return "";
      }
      const int64_t k = w->tensor.shape()[trans_b ? 1 : 0];
      w->tensor = rescaled(w->tensor, inv, [&](int64_t e) { return trans_b ? e / k : e % c; });
      if (b) b->tensor = rescaled(b->tensor, inv, [](int64_t e) { return e; });
      return node.name;
    }
    if (!conv && node.op_type == "LayerNormalization") {
      const Attribute* axis = node.find_attribute("axis");
      if (axis && axis->i != -1) return "";
      NamedTensor* scale = node.inputs.size() > 1 ? edit.private_weight(node.inputs[1], node) : nullptr;
      if (!scale || scale->tensor.numel() != c) return "";
      NamedTensor* b = nullptr;
      if (node.inputs.size() > 2 && !node.inputs[2].empty()) {
        b = edit.private_weight(node.inputs[2], node);
        if (!b || b->tensor.numel() != c) return "";
      }
      scale->tensor = rescaled(scale->tensor, inv, [](int64_t e) { return e; });
      if (b) b->tensor = rescaled(b->tensor, inv, [](int64_t e) { return e; });
      return node.name;
    }
    return "";
  }
}

// The statistics of x / s given those of x (column j belongs to channel j / k).
calib::InputStats scaled_stats(const calib::InputStats& st, const std::vector<float>& s, int64_t k) {
  calib::InputStats out = st;
  const int64_t n = st.cols;
  for (int64_t g = 0; g < st.groups; ++g)
    for (int64_t i = 0; i < n; ++i) {
      const double si = s[static_cast<size_t>(i / k)];
      const auto at = static_cast<size_t>(g * n + i);
      out.sum_sq[at] /= si * si;
      out.sum_abs[at] /= si;
      if (!out.sum.empty()) out.sum[at] /= si;
      out.abs_max[at] = static_cast<float>(out.abs_max[at] / si);
      if (st.has_gram())
        for (int64_t j = 0; j < n; ++j)
          out.gram[static_cast<size_t>(g * n * n + i * n + j)] /= si * s[static_cast<size_t>(j / k)];
    }
  return out;
}

}  // namespace

std::map<std::string, AwqChoice> apply_awq(Model& model, calib::CalibStats& stats, const std::vector<AwqTarget>& targets) {
  Graph& g = model.graph;
  std::map<std::string, AwqChoice> choices;
  std::map<std::string, std::vector<const AwqTarget*>> by_activation;
  for (const auto& t : targets) {
    AwqChoice& c = choices[t.weight];
    const calib::InputStats* st = stats.for_weight(t.weight);
    const Attribute* group = nullptr;
    for (const Node& n : g.nodes)
      if (reads_weight(n, t)) group = n.find_attribute("group");
    if (t.use.activation.empty() || t.use.activation_transposed || (group && group->i != 1))
      c.placed = "not applicable to this layer; scale search only";
    else if (!st || !st->has_gram() || st->count == 0)
      c.placed = "no X^T X for this layer; scale search only";
    else
      by_activation[t.use.activation].push_back(&t);
  }
  for (const auto& [activation, layers] : by_activation) {
    const bool conv = layers[0]->use.op == "Conv";
    int64_t channels = -1;
    bool uniform = true;
    for (const AwqTarget* t : layers) {
      const Tensor& w = g.find_initializer(t->weight)->tensor;
      const calib::InputStats& st = *stats.for_weight(t->weight);
      const int64_t ch = st.cols / per_channel(w, t->use);
      uniform = uniform && (t->use.op == "Conv") == conv && (channels < 0 || channels == ch);
      channels = ch;
    }
    if (!uniform) {
      for (const AwqTarget* t : layers) choices[t->weight].placed = "layers reading " + activation + " disagree on channels; scale search only";
      continue;
    }
    // Mean |x| per channel, from the first layer's statistics.
    const AwqTarget& first = *layers[0];
    const calib::InputStats& st0 = *stats.for_weight(first.weight);
    const int64_t k0 = per_channel(g.find_initializer(first.weight)->tensor, first.use);
    const std::vector<float> mean_abs_cols = st0.mean_abs(0);
    std::vector<float> x_mean(static_cast<size_t>(channels), 0.0f);
    for (int64_t j = 0; j < st0.cols; ++j) x_mean[static_cast<size_t>(j / k0)] += mean_abs_cols[static_cast<size_t>(j)] / static_cast<float>(k0);
    double best_loss = INFINITY;
    int best_step = 0;
    std::vector<float> best_s(static_cast<size_t>(channels), 1.0f);
    for (int step = 0; step < kAlphaSteps; ++step) {
      const double alpha = step / static_cast<double>(kAlphaSteps);
      std::vector<float> s(static_cast<size_t>(channels));
      float lo = INFINITY, hi = 0;
      for (int64_t c = 0; c < channels; ++c) {
        s[static_cast<size_t>(c)] = static_cast<float>(std::pow(std::max(x_mean[static_cast<size_t>(c)], 1e-4f), alpha));
        lo = std::min(lo, s[static_cast<size_t>(c)]);
        hi = std::max(hi, s[static_cast<size_t>(c)]);
      }
      const float norm = std::sqrt(lo * hi);
      for (auto& v : s) v /= norm;
      double loss = 0;
      for (const AwqTarget* t : layers) {
        const Tensor& w = g.find_initializer(t->weight)->tensor;
        loss += scaled_loss(w, *t, s, per_channel(w, t->use), *stats.for_weight(t->weight));
      }
      if (loss < best_loss) {
        best_loss = loss;
        best_step = step;
        best_s = s;
      }
    }
    const double alpha = best_step / static_cast<double>(kAlphaSteps);
    if (best_step == 0) {
      for (const AwqTarget* t : layers) choices[t->weight] = {0.0, "alpha 0 was best: weights unchanged", true};
      continue;
    }
    // Scale the weights' input channels up...
    std::set<std::string> keys;
    for (const AwqTarget* t : layers) {
      NamedTensor* init = nullptr;
      for (auto& i : g.initializers)
        if (i.name == t->weight) init = &i;
      const int64_t k = per_channel(init->tensor, t->use);
      const auto& shape = init->tensor.shape();
      const int64_t cols = t->use.input_axis_first ? 0 : init->tensor.numel() / shape[0];
      const int64_t n_out = t->use.input_axis_first ? shape[1] : 0;
      init->tensor = rescaled(init->tensor, best_s, [&](int64_t e) {
        return t->use.input_axis_first ? e / n_out : (e % cols) / k;
      });
      keys.insert(stats.weight_inputs.at(t->weight));
    }
    // ...and the activation down, where the graph allows without a new node.
    GraphEdit edit(g);
    // An init-capture: clang 14 cannot capture a structured binding directly.
    auto ours = [&, &targets = layers](const Node& n) {
      return std::any_of(targets.begin(), targets.end(), [&](const AwqTarget* t) { return reads_weight(n, *t); });
    };
    bool only_ours = !edit.is_output(activation);
    for (size_t r : edit.readers(activation)) only_ours = only_ours && ours(g.nodes[r]);
    const std::string folded = only_ours ? fold_into_producer(g, activation, best_s, conv) : "";
    std::string placed;
    if (!folded.empty()) {
      placed = "1/s folded into " + folded;
      for (const auto& key : keys) stats.inputs[key] = scaled_stats(stats.inputs.at(key), best_s, stats.inputs.at(key).cols / channels);
      stats.ranges.erase(activation);
    } else {
      const std::string scaled_value = edit.fresh_name(activation + "_awq");
      const std::string inv_name = edit.fresh_name(activation + "_awq_inv_scale");
      const std::string mul_name = edit.fresh_name(activation + "_awq_mul");
      std::vector<int64_t> shape = {channels};
      if (conv)
        for (int64_t i = 2; i < g.find_initializer(first.weight)->tensor.rank(); ++i) shape.push_back(1);
      std::vector<float> inv(best_s.size());
      for (size_t i = 0; i < inv.size(); ++i) inv[i] = 1.0f / best_s[i];
      g.initializers.push_back({inv_name, Tensor::from_values<float>(DType::F32, shape, inv), "AWQ: 1 / activation scale"});
      size_t first_reader = g.nodes.size();
      for (auto& n : g.nodes)
        if (ours(n))
          for (auto& in : n.inputs)
            if (in == activation) in = scaled_value;
      for (size_t i = 0; i < g.nodes.size(); ++i)
        for (const auto& in : g.nodes[i].inputs)
          if (in == scaled_value) first_reader = std::min(first_reader, i);
      g.nodes.insert(g.nodes.begin() + static_cast<std::ptrdiff_t>(first_reader),
                     Node{mul_name, "Mul", "", {activation, inv_name}, {scaled_value}, {}, {}});
      placed = "1/s in Mul node " + mul_name;
      for (const auto& key : keys) {
        const std::string new_key = key + " (awq)";
        stats.inputs[new_key] = scaled_stats(stats.inputs.at(key), best_s, stats.inputs.at(key).cols / channels);
        for (const AwqTarget* t : layers)
          if (stats.weight_inputs[t->weight] == key) stats.weight_inputs[t->weight] = new_key;
      }
    }
    for (const AwqTarget* t : layers) choices[t->weight] = {alpha, placed, true};
  }
  return choices;
}

}  // namespace slmopt::passes
