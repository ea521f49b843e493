// Structured pruning: whole channel groups (lib/passes/channel_groups.hpp)
// lose their least important channels and every tensor of the group shrinks.
#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "passes/channel_groups.hpp"
#include "passes/layer_weight.hpp"
#include "passes/prune.hpp"
#include "passes/sparsity.hpp"

namespace slmopt::passes {
namespace {

const Tensor& tensor_of(const Graph& g, const std::string& name) { return g.find_initializer(name)->tensor; }

double sum_sq(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return s;
}

// Kernel positions per input channel of a consumer weight (Conv: kh x kw).
int64_t positions(const Tensor& w, int64_t axis) {
  int64_t inner = 1;
  for (size_t i = static_cast<size_t>(axis) + 1; i < w.shape().size() && axis == 1; ++i) inner *= w.shape()[i];
  return inner;
}

// Per channel: the squared weights of the layers producing it (magnitude), or
// E[x_c^2] * ||W[:, c]||^2 summed over the layers reading it (wanda): the
// output energy the channel carries into them on the calibration data. With
// mean compensation the mean is not lost, so the variance counts instead
// (FLAP, An et al. 2024).
std::vector<double> importance(const Graph& g, const ChannelGroup& grp, const std::string& method,
                               const calib::CalibStats* stats, bool compensate) {
  std::vector<double> score(static_cast<size_t>(grp.channels), 0.0);
  if (method == "magnitude") {
    for (const auto& p : grp.producers)
      for (int64_t c = 0; c < grp.channels; ++c) score[static_cast<size_t>(c)] += sum_sq(channel_slice(tensor_of(g, p.tensor), p.axis, c));
    return score;
  }
  for (const auto& s : grp.consumers) {
    const Tensor& w = tensor_of(g, s.tensor);
    const int64_t inner = positions(w, s.axis);
    const calib::InputStats& st = wanda_stats(stats, s.tensor, grp.channels * inner);
    const std::vector<float> ms = st.mean_square();
    const std::vector<double> mean = st.mean();
    for (int64_t c = 0; c < grp.channels; ++c) {
      const std::vector<float> col = channel_slice(w, s.axis, c);
      for (size_t i = 0; i < col.size(); ++i) {
        const auto k = static_cast<size_t>(c * inner) + i % static_cast<size_t>(inner);
        const double energy = compensate ? std::max(0.0, ms[k] - mean[k] * mean[k]) : ms[k];
        score[static_cast<size_t>(c)] += energy * col[i] * col[i];
      }
    }
  }
  return score;
}

// Moves the removed channels' mean contribution on the calibration data into
// the biases of the layers that read them (a Conv without one gets one), so
// removing a channel loses only its fluctuation. MatMul readers have no bias
// to take it; returns how many readers could not be compensated.
int compensate_means(Graph& g, const ChannelGroup& grp, const std::vector<int64_t>& keep, const calib::CalibStats& stats) {
  std::vector<bool> kept(static_cast<size_t>(grp.channels), false);
  for (int64_t c : keep) kept[static_cast<size_t>(c)] = true;
  int missed = 0;
  for (const auto& s : grp.consumers) {
    Node* node = nullptr;
    for (Node& n : g.nodes)
      if (n.inputs.size() > 1 && n.inputs[1] == s.tensor) node = &n;
    const Tensor& w = tensor_of(g, s.tensor);
    const int64_t inner = positions(w, s.axis);
    const calib::InputStats* st = layer_stats(&stats, s.tensor, grp.channels * inner);
    if (!node || !st || st->sum.empty() || node->op_type == "MatMul") {
      ++missed;
      continue;
    }
    // Output o of the reader gains sum over removed c, positions k of mean[c, k] * W[o, c, k].
    const int64_t outputs = node->op_type == "Conv" ? w.shape()[0] : w.shape()[static_cast<size_t>(1 - s.axis)];
    std::vector<double> shift(static_cast<size_t>(outputs), 0.0);
    const std::vector<double> mean = st->mean();
    for (int64_t c = 0; c < grp.channels; ++c) {
      if (kept[static_cast<size_t>(c)]) continue;
      const std::vector<float> col = channel_slice(w, s.axis, c);  // [outputs][inner]
      for (size_t i = 0; i < col.size(); ++i)
        shift[i / static_cast<size_t>(inner)] += mean[static_cast<size_t>(c * inner) + i % static_cast<size_t>(inner)] * col[i];
    }
    double scale = 1;
    if (const Attribute* beta = node->find_attribute("beta"); beta && node->op_type == "Gemm") scale = beta->f;
    std::string bias = node->inputs.size() > 2 ? node->inputs[2] : "";
    if (bias.empty()) {
      if (node->op_type != "Conv") {
        ++missed;
        continue;
      }
      bias = s.tensor + "_bias";
      g.initializers.push_back({bias, Tensor(DType::F32, {outputs}), {}});
      std::fill_n(g.initializers.back().tensor.mutable_data<float>(), outputs, 0.0f);
      node->inputs.resize(3);
      node->inputs[2] = bias;
    }
    auto* b = const_cast<NamedTensor*>(g.find_initializer(bias));
    size_t readers = 0;
    for (const Node& n : g.nodes) readers += static_cast<size_t>(std::count(n.inputs.begin(), n.inputs.end(), bias));
    if (!b || b->tensor.dtype() != DType::F32 || b->tensor.numel() != outputs || readers != 1 || scale == 0) {
      ++missed;
      continue;
    }
    for (int64_t o = 0; o < outputs; ++o)
      b->tensor.mutable_data<float>()[o] += static_cast<float>(shift[static_cast<size_t>(o)] / scale);
  }
  return missed;
}

int64_t params_of(const Graph& g, const ChannelGroup& grp) {
  int64_t n = 0;
  for (const auto* list : {&grp.producers, &grp.biases, &grp.params, &grp.consumers})
    for (const auto& s : *list) n += tensor_of(g, s.tensor).numel();
  return n;
}

}  // namespace

double structured_fraction(const PruneConfig& config, const std::string& weight, const std::string& node,
                           const std::string& op, const char* units, PrunedGroup& row, std::vector<int64_t>& rule_hits) {
  const int match = config.rules.first_match(weight, node, op);
  row.rule = match >= 0 ? config.rules.rules[static_cast<size_t>(match)].label : "default";
  if (match >= 0) ++rule_hits[static_cast<size_t>(match)];
  const auto& settings = match >= 0 ? config.rules.rules[static_cast<size_t>(match)].settings : std::map<std::string, std::string>{};
  auto get = [&](const char* key, const std::string& fallback) {
    auto it = settings.find(key);
    return it == settings.end() ? fallback : it->second;
  };
  const SparsityTarget target = parse_sparsity(get("sparsity", config.sparsity), row.rule + " sparsity");
  row.method = get("method", config.method);
  if (target.nm()) throw_usage(row.rule + ": structured pruning removes a fraction of " + units + ", not N:M");
  if (row.method != "magnitude" && row.method != "wanda")
    throw_usage(row.rule + ": structured pruning ranks " + units + " by magnitude or wanda, not '" + row.method + "'");
  row.target = format_sparsity(target);
  return target.fraction;
}

Model prune_structured(const Model& model, const PruneConfig& config, PruneReport& report) {
  if (config.structured != "channels" && config.structured != "ffn")
    throw_usage("--structured takes channels, ffn or heads, got '" + config.structured + "'");
  Model out = model;
  Graph& g = out.graph;
  std::vector<int64_t> rule_hits(config.rules.rules.size(), 0);
  for (const ChannelGroup& grp : find_channel_groups(model.graph)) {
    PrunedGroup row;
    for (const auto& p : grp.producers) row.producers.push_back(p.tensor);
    for (const auto& c : grp.consumers) row.consumers.push_back(c.tensor);
    row.channels = row.kept = grp.channels;
    row.why_not = grp.why_not;
    const bool conv = tensor_of(g, grp.producers[0].tensor).rank() > 2;
    if (row.why_not.empty() && config.structured == "ffn" && conv) row.why_not = "convolution channels (use --structured channels)";
    const double fraction = structured_fraction(config, row.producers[0], "", "", "channels", row, rule_hits);
    row.params_before = row.params_after = params_of(g, grp);
    if (!row.why_not.empty()) {
      row.target.clear();  // left whole
      report.groups.push_back(row);
      continue;
    }
    const int64_t remove = std::min(grp.channels - 1, zeros_before(fraction, grp.channels));
    const bool compensate = config.compensate_means && row.method == "wanda" && config.stats;
    const std::vector<double> score = importance(g, grp, row.method, config.stats, compensate);
    const std::vector<int64_t> keep = keep_highest(score, remove);
    if (compensate) row.compensated = grp.consumers.size() - static_cast<size_t>(compensate_means(g, grp, keep, *config.stats));
    shrink_group(g, grp, keep);
    row.kept = static_cast<int64_t>(keep.size());
    row.params_after = params_of(g, grp);
    report.groups.push_back(row);
  }
  for (size_t i = 0; i < rule_hits.size(); ++i)
    if (rule_hits[i] == 0) report.warnings.push_back(config.rules.rules[i].label + " matched no channel group");
  return out;
}

}  // namespace slmopt::passes
