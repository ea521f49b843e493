#include "plan/variants.hpp"

#include <set>

#include "core/error.hpp"
#include "core/half.hpp"
#include "passes/layer_weight.hpp"
#include "quant/spec.hpp"
#include "runtime/constants.hpp"
#include "runtime/numeric.hpp"

namespace slmopt::plan {

bool is_float_treatment(const std::string& treatment) { return treatment == "f32" || treatment == "f16"; }

void check_treatments(const std::vector<std::string>& treatments) {
  if (treatments.empty()) throw_usage("--candidates names no treatment");
  std::set<std::string> seen;
  bool any_scheme = false;
  for (const auto& t : treatments) {
    if (!seen.insert(t).second) throw_usage("--candidates names '" + t + "' twice");
    if (is_float_treatment(t)) continue;
    with_context("candidate '" + t + "'", [&] { quant::parse_spec(t); });
    any_scheme = true;
  }
  if (!any_scheme) throw_usage("--candidates needs at least one quantization scheme (f32 and f16 alone leave nothing to plan)");
}

namespace {

Tensor rounded_to_f16(const Tensor& w) {
  Tensor f = runtime::widen_to_float(w);
  Tensor out(DType::F32, f.shape());
  const float* src = f.data<float>();
  float* dst = out.mutable_data<float>();
  for (int64_t i = 0; i < f.numel(); ++i) dst[i] = half_to_float(float_to_half(src[i]));
  return out;
}

bool is_planned(const passes::QuantizedTensor& row) { return !row.action.starts_with("keep "); }

}  // namespace

Variants::Variants(const Model& model, const std::vector<std::string>& treatments, const passes::QuantizeConfig& base,
                   const VariantProgress& progress)
    : model_(model), treatments_(treatments) {
  check_treatments(treatments);
  runtime::constants_to_initializers(model_);  // weights where quantize_model finds them
  std::map<std::string, size_t> index_of;
  for (size_t i = 0; i < model_.graph.initializers.size(); ++i) index_of[model_.graph.initializers[i].name] = i;
  bool first = true;
  std::map<std::string, size_t> weight_of;
  for (size_t t = 0; t < treatments.size(); ++t) {
    if (is_float_treatment(treatments[t])) continue;
    if (progress) progress(treatments[t]);
    passes::QuantizeConfig config = base;
    config.rules = {};
    config.default_spec = treatments[t];
    config.allow_empty = true;  // a model without plannable weights is reported by the planner
    passes::QuantizeReport report;
    const Model q = passes::quantize_model(model_, config, report);
    std::map<std::string, const Tensor*> quantized;
    for (const auto& init : q.graph.initializers) quantized[init.name] = &init.tensor;
    if (first) {
      first = false;
      uint64_t planned_bytes = 0;
      for (const auto& row : report.tensors) {
        if (!is_planned(row)) continue;
        weight_of[row.name] = weights_.size();
        const size_t init = index_of.at(row.name);
        const Tensor& w = model_.graph.initializers[init].tensor;
        weights_.push_back({row.name, row.op, w.shape(), w.numel()});
        initializer_index_.push_back(init);
        planned_bytes += w.nbytes();
      }
      uint64_t total = 0;
      for (const auto& init : model_.graph.initializers) total += init.tensor.nbytes();
      fixed_bytes_ = total - planned_bytes;
      tensors_.assign(weights_.size(), std::vector<Tensor>(treatments.size()));
      bytes_.assign(weights_.size(), std::vector<uint64_t>(treatments.size(), 0));
      relative_error_.assign(weights_.size(), std::vector<double>(treatments.size(), 0.0));
      output_error_.assign(weights_.size(), std::vector<double>(treatments.size(), -1.0));
    }
    for (const auto& row : report.tensors) {
      auto w = weight_of.find(row.name);
      if (w == weight_of.end()) continue;
      tensors_[w->second][t] = *quantized.at(row.name);
      bytes_[w->second][t] = tensors_[w->second][t].nbytes();
      relative_error_[w->second][t] = row.relative_error;
      output_error_[w->second][t] = row.output_error;
    }
  }
  for (size_t i = 0; i < weights_.size(); ++i) {
    const Tensor& w = model_.graph.initializers[initializer_index_[i]].tensor;
    for (size_t t = 0; t < treatments.size(); ++t) {
      if (treatments[t] == "f32") {
        tensors_[i][t] = w;
        bytes_[i][t] = static_cast<uint64_t>(w.numel()) * 4;
      } else if (treatments[t] == "f16") {
        tensors_[i][t] = rounded_to_f16(w);
        bytes_[i][t] = static_cast<uint64_t>(w.numel()) * 2;
        relative_error_[i][t] = passes::relative_error(runtime::widen_to_float(w), tensors_[i][t]);
      }
    }
  }
  if (weights_.empty())
    throw_usage("the model has no weight the planner can treat (MatMul, Gemm, Conv or Gather weights of at least " +
                std::to_string(base.min_elements) + " elements)");
}

Model Variants::assemble(const std::vector<size_t>& pick) const {
  if (pick.size() != weights_.size()) throw_usage("a plan names " + std::to_string(pick.size()) + " treatments for " +
                                                  std::to_string(weights_.size()) + " weights");
  Model out = model_;
  for (size_t i = 0; i < pick.size(); ++i) out.graph.initializers[initializer_index_[i]].tensor = tensors_[i][pick[i]];
  return out;
}

Model Variants::with_one(size_t weight, size_t treatment) const {
  Model out = model_;
  out.graph.initializers[initializer_index_.at(weight)].tensor = tensors_.at(weight).at(treatment);
  return out;
}

}  // namespace slmopt::plan
