#include "train/fake_quantize.hpp"

#include <cctype>
#include <limits>
#include <map>
#include <set>

#include "core/error.hpp"
#include "core/half.hpp"
#include "quant/quantize_weight.hpp"
#include "quant/spec.hpp"

namespace slmopt::train {

namespace {

// The layer a weight's name places it in ("model.layers.3.mlp..." is 3); -1 for none.
int64_t layer_of(const std::string& name) {
  const size_t at = name.find("layers.");
  if (at == std::string::npos) return -1;
  int64_t layer = 0;
  size_t i = at + 7;
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])); ++i) layer = layer * 10 + (name[i] - '0');
  return layer;
}

std::vector<int64_t> freeze_schedule(const LlamaWeights& w, const std::vector<bool>& joint, int64_t steps) {
  // Stages in layer order; weights outside the layers freeze last.
  std::set<int64_t> stages;
  // (A stage per tensor, q before k before ..., measured no better: 0.0264 against 0.0255.)
  auto stage_key = [&](size_t i) {
    const int64_t layer = layer_of(w.names[i]);
    return layer < 0 ? std::numeric_limits<int64_t>::max() : layer;
  };
  for (size_t i = 0; i < joint.size(); ++i)
    if (joint[i]) stages.insert(stage_key(i));
  if (stages.empty()) return {};
  std::vector<int64_t> freeze_at(joint.size(), -1);
  const int64_t count = static_cast<int64_t>(stages.size());
  for (size_t i = 0; i < joint.size(); ++i)
    if (joint[i]) {
      const int64_t stage = std::distance(stages.begin(), stages.find(stage_key(i)));
      freeze_at[i] = (stage + 1) * steps / (count + 1);
    }
  return freeze_at;
}

}  // namespace

FakeQuantPlan plan_fake_quantize(const Model& model, const LlamaWeights& w, const passes::QuantizeConfig& config,
                                 int64_t steps) {
  if (config.stats || config.algorithm == "gptq" || config.algorithm == "awq")
    throw_usage("--finetune trains for rtn or mse rounding without calibration weights, not " + config.algorithm);
  passes::QuantizeReport plan;
  passes::QuantizeConfig planning = config;
  planning.allow_empty = true;  // only the plan is wanted here
  passes::quantize_model(model, planning, plan);
  std::map<std::string, const passes::QuantizedTensor*> planned;
  for (const auto& t : plan.tensors) {
    if (t.algorithm == "gptq" || t.algorithm == "awq")
      throw_usage("--finetune: a rule gives '" + t.name + "' algorithm " + t.algorithm + "; it trains for rtn or mse");
    planned[t.name] = &t;
  }
  struct Plan {
    enum Kind { Keep, Half, Quantize } kind = Keep;
    quant::QuantSpec spec;
    bool search = false;
  };
  std::vector<Plan> plans(w.names.size());
  std::vector<bool> joint(w.names.size(), false);
  for (size_t i = 0; i < w.names.size(); ++i) {
    auto it = planned.find(w.names[i]);
    if (it == planned.end() || it->second->action == "keep f32") continue;
    if (it->second->action == "keep f16") {
      plans[i].kind = Plan::Half;
      continue;
    }
    plans[i].kind = Plan::Quantize;
    plans[i].spec = quant::parse_spec(it->second->action);
    plans[i].search = it->second->algorithm != "rtn";  // as the quantize pass decides
    joint[i] = plans[i].spec.scheme->name == "tcq";
  }
  FakeQuantPlan out;
  out.freeze_at = freeze_schedule(w, joint, steps);
  out.fake_quantize = [plans, sparse = config.sparse](size_t index, const Matrix& latent, Matrix& effective) {
    const Plan& p = plans.at(index);
    if (p.kind == Plan::Keep) {
      effective = latent;
      return;
    }
    if (p.kind == Plan::Half) {
      effective = latent.unaryExpr([](float x) { return half_to_float(float_to_half(x)); });
      return;
    }
    // Weights are [out, in] (Gemm with transB, or a Gather table): rows along the input axis.
    Tensor t(DType::F32, {latent.rows(), latent.cols()});
    std::copy_n(latent.data(), latent.size(), t.mutable_data<float>());
    quant::QuantizeOptions options;
    options.search = p.search;
    // A pruned weight the pass stores sparse reads back as exactly 0, as it will.
    std::vector<uint8_t> mask =
        sparse ? quant::sparse_mask_if_smaller(t, quant::InputAxis::Rest, p.spec.params.bits) : std::vector<uint8_t>{};
    const Tensor q = quant::quantize_weight(t, quant::InputAxis::Rest, *p.spec.scheme, p.spec.params, options);
    const Tensor back = quant::dequantize(quant::with_sparse_mask(q, std::move(mask)));
    effective = Eigen::Map<const Matrix>(back.data<float>(), latent.rows(), latent.cols());
  };
  return out;
}

}  // namespace slmopt::train
