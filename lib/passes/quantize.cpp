#include "passes/quantize.hpp"

#include <cmath>
#include <map>

#include "core/error.hpp"
#include "core/half.hpp"
#include "core/quant_tensor.hpp"
#include "core/weight_uses.hpp"
#include "passes/awq.hpp"
#include "passes/layer_weight.hpp"
#include "quant/gptq.hpp"
#include "runtime/constants.hpp"
#include "runtime/numeric.hpp"
#include "quant/hessian.hpp"
#include "quant/quantize_weight.hpp"
#include "quant/spec.hpp"

namespace slmopt::passes {
namespace {

struct Action {
  std::string keep;  // "", "f32" or "f16"
  quant::QuantSpec spec;
  std::string algorithm;
  quant::GptqOptions gptq;
};

Action resolve(const std::map<std::string, std::string>& s, const QuantizeConfig& config, const std::string& label) {
  check_setting_keys(s, quantize_rule_keys(), label);
  Action a;
  a.algorithm = config.algorithm;
  auto get = [&](const char* key) -> const std::string* {
    auto it = s.find(key);
    return it == s.end() ? nullptr : &it->second;
  };
  // A float "scheme" (--bits "embed*=f16", --default f32) means keep.
  const std::string* keep = get("keep");
  const std::string* named = get("scheme");
  if (!keep && !named && !get("bits")) named = &config.default_spec;
  if (!keep && named && (*named == "f32" || *named == "f16")) keep = named;
  if (keep) {
    if (*keep != "f32" && *keep != "f16") throw_usage(label + ": keep must be f32 or f16, got '" + *keep + "'");
    a.keep = *keep;
    return a;
  }
  try {
    if (const auto* scheme = get("scheme")) a.spec = quant::parse_spec(*scheme);
    else if (const auto* bits = get("bits")) a.spec = quant::spec_for_bits(static_cast<int>(setting_integer(*bits, label + " bits")));
    else a.spec = quant::parse_spec(config.default_spec);
    if (const auto* bits = get("bits"); bits && get("scheme")) a.spec.params.bits = static_cast<int>(setting_integer(*bits, label + " bits"));
    if (const auto* group = get("group")) {
      if (*group == "channel") a.spec.params.group = 0;
      else if (*group == "tensor") a.spec.params.group = -1;
      else {
        const int64_t g = setting_integer(*group, label + " group");
        if (g <= 0) throw_usage(label + ": group size must be positive, got " + *group + " (or 'channel', 'tensor')");
        a.spec.params.group = g;
        if (a.spec.params.sub_scale_bits && a.spec.params.super_block % g != 0)
          a.spec.params.super_block = g * std::max<int64_t>(2, a.spec.params.super_block / g);
      }
    }
    if (const auto* sym = get("symmetric")) a.spec.params.symmetric = setting_bool(*sym, label + " symmetric");
    if (const auto* scale = get("scale")) {
      if (*scale != "f16" && *scale != "f32") throw_usage(label + ": scale must be f16 or f32, got '" + *scale + "'");
      a.spec.params.scale_dtype = *scale == "f16" ? DType::F16 : DType::F32;
    }
    if (const auto* sb = get("scale_bits")) a.spec.params.sub_scale_bits = static_cast<int>(setting_integer(*sb, label + " scale_bits"));
    if (const auto* sup = get("super_block")) a.spec.params.super_block = setting_integer(*sup, label + " super_block");
    if (const auto* alg = get("algorithm")) a.algorithm = *alg;
    if (const auto* damp = get("damp")) a.gptq.damp = setting_number(*damp, 0, 1, label + " damp");
    if (const auto* order = get("act_order")) a.gptq.act_order = setting_bool(*order, label + " act_order");
    a.spec.scheme->validate(a.spec.params);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Usage) throw;
    throw_usage(label + ": " + e.what());
  }
  if (a.algorithm != "rtn" && a.algorithm != "mse" && a.algorithm != "gptq" && a.algorithm != "awq")
    throw_usage(label + ": unknown algorithm '" + a.algorithm + "' (known: rtn, mse, gptq, awq)");
  if ((a.algorithm == "gptq" || a.algorithm == "awq") && !config.stats && !config.expect_stats)
    throw_usage(label + ": algorithm '" + a.algorithm + "' needs calibration data (--calib DIR or --calib-stats FILE)");
  if (a.algorithm == "gptq" && (!a.spec.scheme->nearest || !a.spec.scheme->encode))
    throw_usage(label + ": scheme '" + std::string(a.spec.scheme->name) + "' does not support gptq");
  return a;
}

Tensor to_f16(const Tensor& w) {
  Tensor h(DType::F16, w.shape());
  for (int64_t i = 0; i < w.numel(); ++i) h.mutable_data<uint16_t>()[i] = float_to_half(w.data<float>()[i]);
  return h;
}

// A lookup table (an untied embedding's Gather) multiplies no input, so
// there is no X^T X to weigh its errors by: it gets the scale search, as AWQ.
bool gptq_applies(const Action& a, const WeightUse& use) { return a.algorithm == "gptq" && !use.activation.empty(); }

Tensor quantize_dense(const Tensor& w, const std::string& name, const WeightUse& use, const Action& a,
                      const calib::CalibStats* stats, bool keep_zeros, std::vector<std::string>* warnings) {
  const calib::InputStats* s = layer_stats(stats, name, input_cols(w, use));
  quant::QuantizeOptions qo;
  qo.search = a.algorithm != "rtn";
  std::vector<float> importance;
  if (s) {
    importance = importance_of(*s);
    qo.importance = importance.data();
  }
  if (gptq_applies(a, use)) {
    if (!s || !s->has_gram())
      throw_usage("weight '" + name + "': gptq needs X^T X of its layer, which the calibration statistics lack" +
                  (s ? " (input wider than --max-gram-cols, or --no-gram)" : " (no calibration data reached it)"));
    if (s->count < 2 * s->cols && warnings)
      warnings->push_back("weight '" + name + "': GPTQ saw " + std::to_string(s->count) + " calibration vectors for " +
                          std::to_string(s->cols) + " inputs and may overfit them; give more calibration data");
    quant::GptqOptions gptq = a.gptq;
    gptq.keep_zeros = keep_zeros;
    return quant::quantize_weight_gptq(w, axis_of(use), *a.spec.scheme, a.spec.params, qo, s->gram.data(), s->groups,
                                       gptq);
  }
  return quant::quantize_weight(w, axis_of(use), *a.spec.scheme, a.spec.params, qo);
}

Tensor quantize_one(const Tensor& w, const std::string& name, const WeightUse& use, const Action& a,
                    const calib::CalibStats* stats, bool sparse, std::vector<std::string>* warnings) {
  // Pruned weights (exact zeros) are dropped from storage when that is
  // smaller, and GPTQ then keeps them at zero.
  std::vector<uint8_t> mask = sparse ? quant::sparse_mask_if_smaller(w, axis_of(use), a.spec.params.bits) : std::vector<uint8_t>{};
  return quant::with_sparse_mask(quantize_dense(w, name, use, a, stats, !mask.empty(), warnings), std::move(mask));
}

}  // namespace

const std::vector<std::string>& quantize_rule_keys() {
  static const std::vector<std::string> keys = {"scheme",     "bits",      "group",     "symmetric", "scale",
                                                "scale_bits", "super_block", "algorithm", "damp",    "act_order",
                                                "keep"};
  return keys;
}

void check_quantize_config(const QuantizeConfig& config) {
  resolve({}, config, "default");
  for (const auto& r : config.rules.rules) resolve(r.settings, config, r.label);
}

namespace {

// What the pass will do with one weight, decided before any weight changes.
struct Decision {
  std::string rule = "default";
  int match = -1;
  bool keep_as_is = false;  // not eligible, or small and unmatched
  Action action;
};

std::map<std::string, Decision> decide(const Graph& g, const std::map<std::string, WeightUse>& uses,
                                       const QuantizeConfig& config) {
  std::map<std::string, Decision> out;
  for (const auto& init : g.initializers) {
    auto use = uses.find(init.name);
    if (use == uses.end()) continue;
    const Tensor& w = init.tensor;
    Decision d;
    d.match = config.rules.first_match(init.name, use->second.node, use->second.op);
    if (d.match >= 0) d.rule = config.rules.rules[static_cast<size_t>(d.match)].label;
    const bool float_weight = w.dtype() == DType::F32 || w.dtype() == DType::F16 || w.dtype() == DType::BF16;
    const bool eligible = float_weight && !w.is_quantized() && w.rank() >= 1 &&
                          (!use->second.input_axis_first || w.rank() == 2);
    if (!eligible || (d.match < 0 && w.numel() < config.min_elements)) {
      d.rule = !eligible ? "not a float weight" : "small tensor";
      d.keep_as_is = true;
    } else {
      d.action = resolve(d.match >= 0 ? config.rules.rules[static_cast<size_t>(d.match)].settings
                                      : std::map<std::string, std::string>{},
                         config, d.rule);
    }
    out[init.name] = d;
  }
  return out;
}

}  // namespace

Model quantize_model(const Model& model, const QuantizeConfig& config, QuantizeReport& report, const Progress& progress) {
  check_quantize_config(config);
  Model out = model;
  runtime::constants_to_initializers(out);
  Graph& g = out.graph;
  const auto found = find_weight_uses(g);
  auto decisions = decide(g, found, config);
  // A layer no calibration sample reached (an If branch the data never took)
  // has nothing to weigh its errors by: it gets the scale search instead.
  if (config.stats)
    for (const auto& init : g.initializers) {
      auto d = decisions.find(init.name);
      if (d == decisions.end() || d->second.keep_as_is || !d->second.action.keep.empty()) continue;
      Action& a = d->second.action;
      if (a.algorithm != "gptq" && a.algorithm != "awq") continue;
      const WeightUse& use = found.at(init.name);
      if (use.activation.empty() || layer_stats(config.stats, init.name, input_cols(init.tensor, use))) continue;
      report.warnings.push_back("weight '" + init.name + "': no calibration sample reached its layer (a branch the data never took?); " +
                                a.algorithm + " falls back to the scale search");
      a.algorithm = "mse";
    }
  // Activation-aware scaling rewrites weights, activations and their
  // statistics first; everything after sees the scaled model.
  calib::CalibStats scaled_stats;
  const calib::CalibStats* stats = config.stats;
  std::map<std::string, AwqChoice> awq;
  {
    std::vector<AwqTarget> targets;
    const auto uses = find_weight_uses(g);
    for (const auto& [name, d] : decisions)
      if (!d.keep_as_is && d.action.keep.empty() && d.action.algorithm == "awq")
        targets.push_back({name, uses.at(name), d.action.spec});
    if (!targets.empty()) {
      scaled_stats = *config.stats;
      awq = apply_awq(out, scaled_stats, targets);
      stats = &scaled_stats;
    }
  }
  const auto uses = find_weight_uses(g);
  std::vector<int64_t> rule_hits(config.rules.rules.size(), 0);
  std::vector<Node> casts;
  size_t done = 0;
  int64_t changed = 0;
  for (auto& init : g.initializers) {
    auto use = uses.find(init.name);
    auto decision = decisions.find(init.name);
    if (use == uses.end() || decision == decisions.end()) continue;
    if (progress) progress(done++, uses.size(), init.name);
    const Decision& d = decision->second;
    // bf16/f16 checkpoints are widened one weight at a time, never as a whole.
    const Tensor w = d.keep_as_is ? init.tensor : runtime::widen_to_float(init.tensor);
    QuantizedTensor row{init.name, use->second.node, use->second.op, d.rule, "", config.algorithm, w.shape(), 32, 0};
    report.bytes_before += init.tensor.nbytes();
    if (d.match >= 0) ++rule_hits[static_cast<size_t>(d.match)];
    if (d.keep_as_is) {
      row.action = "keep " + std::string(dtype_name(w.dtype()));
      row.bits_per_weight = 8.0 * dtype_size(w.dtype());
      report.bytes_after += w.nbytes();
      report.tensors.push_back(row);
      continue;
    }
    const Action& a = d.action;
    row.algorithm = a.algorithm;
    if (a.algorithm == "gptq" && !gptq_applies(a, use->second)) row.algorithm = "gptq: not applicable to this layer; scale search only";
    if (auto choice = awq.find(init.name); choice != awq.end())
      row.algorithm = choice->second.applied ? "awq (alpha " + std::to_string(choice->second.alpha).substr(0, 4) + ", " +
                                                   choice->second.placed + ")"
                                             : "awq: " + choice->second.placed;
    if (a.keep == "f32") {
      row.action = "keep f32";
      init.tensor = w;
    } else if (a.keep == "f16") {
      // The weight is stored in f16 and cast back where the graph reads it.
      const std::string half_name = init.name + "_f16";
      Tensor h = to_f16(w);
      Attribute to;
      to.name = "to";
      to.i = 1;  // onnx.TensorProto.FLOAT
      casts.push_back(Node{init.name + "_cast", "Cast", "", {half_name}, {init.name}, {to}, {}});
      Tensor back(DType::F32, w.shape());
      for (int64_t i = 0; i < w.numel(); ++i) back.mutable_data<float>()[i] = half_to_float(h.data<uint16_t>()[i]);
      row.relative_error = relative_error(w, back);
      row.action = "keep f16";
      ++changed;
      row.bits_per_weight = 16;
      init.name = half_name;
      init.tensor = h;
    } else {
      init.tensor = with_context("tensor '" + init.name + "'",
                                 [&] { return quantize_one(w, init.name, use->second, a, stats, config.sparse, &report.warnings); });
      row.action = quant::format_spec(a.spec);
      ++changed;
      row.bits_per_weight = init.tensor.quant()->bits_per_weight();
      const Tensor back = quant::dequantize(init.tensor);
      row.relative_error = relative_error(w, back);
      if (const calib::InputStats* s = layer_stats(stats, init.name, input_cols(w, use->second)))
        row.output_error = output_error(w, back, use->second, *s);
    }
    report.bytes_after += init.tensor.nbytes();
    report.tensors.push_back(row);
  }
  if (progress) progress(uses.size(), uses.size(), "");
  g.nodes.insert(g.nodes.begin(), casts.begin(), casts.end());
  for (size_t i = 0; i < rule_hits.size(); ++i)
    if (rule_hits[i] == 0) report.warnings.push_back(config.rules.rules[i].label + " matched no weight");
  require_changes(changed,
                  uses.empty() ? std::string(kNoWeightFound)
                               : "quantize changed none of the " + std::to_string(uses.size()) +
                                     " weights it found (smaller than --min-elements " +
                                     std::to_string(config.min_elements) + ", kept float by a rule, or not float)",
                  config.rules, config.allow_empty, report.warnings);
  return out;
}

}  // namespace slmopt::passes
