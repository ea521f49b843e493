#include "passes/prune.hpp"

#include <map>

#include "core/error.hpp"
#include "core/weight_uses.hpp"
#include "passes/layer_weight.hpp"
#include "passes/sparsegpt.hpp"
#include "passes/sparsity.hpp"
#include "runtime/constants.hpp"

namespace slmopt::passes {
namespace {

struct PruneAction {
  SparsityTarget target;
  std::string method;
  bool global = false;
  SparseGptOptions sparsegpt;
};

PruneAction resolve(const std::map<std::string, std::string>& s, const PruneConfig& config, const std::string& label) {
  check_setting_keys(s, prune_rule_keys(), label);
  auto get = [&](const char* key, const std::string& fallback) {
    auto it = s.find(key);
    return it == s.end() ? fallback : it->second;
  };
  PruneAction a;
  a.target = parse_sparsity(get("sparsity", config.sparsity), label + " sparsity");
  a.method = get("method", config.method);
  const std::string scope = get("scope", config.scope);
  if (a.method != "magnitude" && a.method != "wanda" && a.method != "sparsegpt")
    throw_usage(label + ": unknown method '" + a.method + "' (known: magnitude, wanda, sparsegpt)");
  if (scope != "layer" && scope != "global") throw_usage(label + ": scope must be layer or global, got '" + scope + "'");
  a.global = scope == "global";
  if (a.global && (a.method != "magnitude" || a.target.nm()))
    throw_usage(label + ": scope global compares magnitudes across layers: it needs method magnitude and a fraction");
  if (auto it = s.find("damp"); it != s.end()) a.sparsegpt.damp = setting_number(it->second, 0, 1, label + " damp");
  if (a.method != "magnitude" && !config.stats && !config.expect_stats)
    throw_usage(label + ": method '" + a.method + "' needs calibration data (--calib DIR or --calib-stats FILE)");
  return a;
}

bool prunable_op(const std::string& op) { return op == "MatMul" || op == "Gemm" || op == "Conv"; }

struct Decision {
  std::string rule = "default";
  int match = -1;
  bool leave = false;
  PruneAction action;
};

int64_t count_zeros(const std::vector<float>& w) {
  int64_t z = 0;
  for (float v : w) z += v == 0.0f;
  return z;
}

// One layer at its own target. `rows` is the weight as rows x cols.
void prune_layer(std::vector<float>& rows_w, int64_t rows, int64_t cols, const PruneAction& a,
                 const calib::InputStats* s, const std::string& name) {
  if (a.method == "magnitude") {
    apply_mask(rows_w, magnitude_scores(rows_w), rows, cols, a.target, false);
    return;
  }
  if (!s) throw_usage("weight '" + name + "': method '" + a.method + "' needs calibration statistics of its layer, and no calibration data reached it");
  if (a.method == "wanda") {
    apply_mask(rows_w, wanda_scores(rows_w, rows, cols, *s), rows, cols, a.target, true);
    return;
  }
  if (!s->has_gram())
    throw_usage("weight '" + name + "': sparsegpt needs X^T X of its layer, which the calibration statistics lack "
                "(input wider than --max-gram-cols, or --no-gram)");
  sparsegpt_prune(rows_w, rows, cols, s->gram.data(), s->groups, a.target, a.sparsegpt);
}

}  // namespace

const std::vector<std::string>& prune_rule_keys() {
  static const std::vector<std::string> keys = {"sparsity", "method", "scope", "damp"};
  return keys;
}

void check_prune_config(const PruneConfig& config) {
  resolve({}, config, "default");
  for (const auto& r : config.rules.rules) resolve(r.settings, config, r.label);
}

namespace {

Model prune_unstructured(Model out, const PruneConfig& config, PruneReport& report, const Progress& progress);

}  // namespace

Model prune_model(const Model& model, const PruneConfig& config, PruneReport& report, const Progress& progress) {
  check_prune_config(config);
  Model normalized = model;
  runtime::constants_to_initializers(normalized);
  // --sparsity 0 without rules asks for nothing, and gets it.
  const SparsityTarget target = parse_sparsity(config.sparsity, "--sparsity");
  PruneConfig checked = config;
  checked.allow_empty = config.allow_empty || (config.rules.rules.empty() && target.fraction == 0 && !target.nm());
  if (config.structured.empty()) return prune_unstructured(std::move(normalized), checked, report, progress);
  Model out = config.structured == "heads" ? prune_heads(normalized, config, report)
                                           : prune_structured(normalized, config, report);
  int64_t cut = 0;
  for (const auto& group : report.groups) cut += group.kept < group.channels;
  require_changes(cut,
                  report.groups.empty() ? "prune --structured " + config.structured + " found no group to prune"
                                        : "prune --structured " + config.structured + " removed no channel from the " +
                                              std::to_string(report.groups.size()) + " groups it found",
                  config.rules, checked.allow_empty, report.warnings);
  return out;
}

namespace {

Model prune_unstructured(Model out, const PruneConfig& config, PruneReport& report, const Progress& progress) {
  Graph& g = out.graph;
  const auto uses = find_weight_uses(g);
  std::map<std::string, Decision> decisions;
  std::vector<int64_t> rule_hits(config.rules.rules.size(), 0);
  for (const auto& init : g.initializers) {
    auto use = uses.find(init.name);
    if (use == uses.end() || !prunable_op(use->second.op)) continue;
    Decision d;
    d.match = config.rules.first_match(init.name, use->second.node, use->second.op);
    if (d.match >= 0) {
      d.rule = config.rules.rules[static_cast<size_t>(d.match)].label;
      ++rule_hits[static_cast<size_t>(d.match)];
    }
    const Tensor& w = init.tensor;
    const bool eligible = w.dtype() == DType::F32 && !w.is_quantized() && w.rank() >= 1 &&
                          (!use->second.input_axis_first || w.rank() == 2);
    if (!eligible || (d.match < 0 && w.numel() < config.min_elements)) {
      d.rule = !eligible ? "not a float32 weight" : "small tensor";
      d.leave = true;
    } else {
      d.action = resolve(d.match >= 0 ? config.rules.rules[static_cast<size_t>(d.match)].settings
                                      : std::map<std::string, std::string>{},
                         config, d.rule);
    }
    decisions[init.name] = d;
  }

  // Weights as rows, pruned in place; global groups (per rule) share one cut.
  std::map<std::string, std::vector<float>> pruned;
  std::map<int, std::vector<std::string>> global_groups;
  size_t done = 0;
  for (const auto& init : g.initializers) {
    auto d = decisions.find(init.name);
    if (d == decisions.end() || d->second.leave) continue;
    if (progress) progress(done++, decisions.size(), init.name);
    const WeightUse& use = uses.at(init.name);
    int64_t rows = 0, cols = 0;
    std::vector<float> m = quant::weight_rows(init.tensor, axis_of(use), rows, cols);
    if (d->second.action.global) {
      global_groups[d->second.match].push_back(init.name);
    } else {
      prune_layer(m, rows, cols, d->second.action, layer_stats(config.stats, init.name, cols), init.name);
    }
    pruned[init.name] = std::move(m);
  }
  for (auto& [match, names] : global_groups) {
    std::vector<float> scores;
    for (const auto& name : names) {
      const auto s = magnitude_scores(pruned.at(name));
      scores.insert(scores.end(), s.begin(), s.end());
    }
    const double fraction = decisions.at(names.front()).action.target.fraction;
    const std::vector<bool> cut = lowest(scores, zeros_before(fraction, static_cast<int64_t>(scores.size())));
    size_t at = 0;
    for (const auto& name : names)
      for (float& v : pruned.at(name))
        if (cut[at++]) v = 0.0f;
  }
  if (progress) progress(decisions.size(), decisions.size(), "");

  for (auto& init : g.initializers) {
    auto d = decisions.find(init.name);
    if (d == decisions.end()) continue;
    const Decision& dec = d->second;
    const WeightUse& use = uses.at(init.name);
    PrunedTensor row{init.name, use.node, use.op, dec.rule, "", "", init.tensor.shape(), init.tensor.numel(), 0, 0, -1};
    auto p = pruned.find(init.name);
    if (p == pruned.end()) {
      if (init.tensor.dtype() == DType::F32 && !init.tensor.is_quantized())
        row.zeros = count_zeros(std::vector<float>(init.tensor.data<float>(), init.tensor.data<float>() + init.tensor.numel()));
    } else {
      const Tensor before = init.tensor;
      init.tensor = weight_from_rows(p->second, before, axis_of(use));
      row.target = format_sparsity(dec.action.target) + (dec.action.global ? " global" : "");
      row.method = dec.action.method;
      row.zeros = count_zeros(p->second);
      row.relative_error = relative_error(before, init.tensor);
      if (const calib::InputStats* s = layer_stats(config.stats, init.name, input_cols(before, use)))
        row.output_error = output_error(before, init.tensor, use, *s);
    }
    report.weights += row.numel;
    report.zeros += row.zeros;
    report.tensors.push_back(row);
  }
  for (size_t i = 0; i < rule_hits.size(); ++i)
    if (rule_hits[i] == 0) report.warnings.push_back(config.rules.rules[i].label + " matched no weight");
  require_changes(static_cast<int64_t>(pruned.size()),
                  uses.empty() ? std::string(kNoWeightFound)
                               : "prune changed none of the " + std::to_string(uses.size()) +
                                     " weights it found (only float MatMul, Gemm and Conv weights of at least "
                                     "--min-elements " + std::to_string(config.min_elements) + " are pruned unless a rule names them)",
                  config.rules, config.allow_empty, report.warnings);
  return out;
}

}  // namespace

}  // namespace slmopt::passes
