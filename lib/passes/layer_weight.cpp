#include "passes/layer_weight.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "quant/hessian.hpp"

namespace slmopt::passes {

quant::InputAxis axis_of(const WeightUse& use) {
  return use.input_axis_first ? quant::InputAxis::First : quant::InputAxis::Rest;
}

int64_t input_cols(const Tensor& w, const WeightUse& use) {
  if (use.input_axis_first) return w.shape()[0];
  return w.shape()[0] > 0 ? w.numel() / w.shape()[0] : 0;
}

Tensor weight_from_rows(const std::vector<float>& rows, const Tensor& like, quant::InputAxis axis) {
  Tensor out(DType::F32, like.shape());
  if (static_cast<int64_t>(rows.size()) != out.numel()) throw_internal("weight_from_rows: size mismatch");
  float* dst = out.mutable_data<float>();
  if (axis == quant::InputAxis::Rest) {
    std::copy(rows.begin(), rows.end(), dst);
    return out;
  }
  const int64_t k = like.shape()[0], n = like.shape()[1];
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < n; ++j) dst[i * n + j] = rows[static_cast<size_t>(j * k + i)];
  return out;
}

const calib::InputStats* layer_stats(const calib::CalibStats* stats, const std::string& weight, int64_t cols) {
  const calib::InputStats* s = stats ? stats->for_weight(weight) : nullptr;
  if (s && s->cols != cols)
    throw_bad_input("calibration statistics do not match the model: weight '" + weight + "' has " +
                    std::to_string(cols) + " inputs, the statistics " + std::to_string(s->cols));
  return s && s->count > 0 ? s : nullptr;
}

const calib::InputStats& wanda_stats(const calib::CalibStats* stats, const std::string& weight, int64_t cols) {
  const calib::InputStats* s = layer_stats(stats, weight, cols);
  if (!s) throw_usage("weight '" + weight + "': structured wanda needs calibration statistics of its layer");
  return *s;
}

std::vector<float> importance_of(const calib::InputStats& s) {
  std::vector<float> m(static_cast<size_t>(s.cols), 0.0f);
  for (int64_t g = 0; g < s.groups; ++g) {
    const auto mg = s.mean_square(g);
    for (size_t i = 0; i < m.size(); ++i) m[i] += mg[i];
  }
  return m;
}

double relative_error(const Tensor& w, const Tensor& changed) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const double d = static_cast<double>(w.data<float>()[i]) - changed.data<float>()[i];
    num += d * d;
    den += static_cast<double>(w.data<float>()[i]) * w.data<float>()[i];
  }
  return den > 0 ? std::sqrt(num / den) : (num > 0 ? INFINITY : 0.0);
}

double output_error(const Tensor& w, const Tensor& changed, const WeightUse& use, const calib::InputStats& s) {
  int64_t rows = 0, cols = 0;
  const std::vector<float> a = quant::weight_rows(w, axis_of(use), rows, cols);
  const std::vector<float> b = quant::weight_rows(changed, axis_of(use), rows, cols);
  if (!s.has_gram() || rows % s.groups != 0) return -1;
  const double num = quant::hessian_error(a.data(), b.data(), rows, cols, s.gram.data(), s.groups);
  const double den = quant::hessian_error(a.data(), nullptr, rows, cols, s.gram.data(), s.groups);
  return den > 0 ? std::sqrt(std::max(0.0, num) / den) : -1;
}

void require_changes(int64_t changed, const std::string& what, const RuleSet& rules, bool allow_empty,
                     std::vector<std::string>& warnings) {
  if (changed > 0) return;
  std::string message = what;
  if (!rules.rules.empty()) {
    message += " (rules:";
    for (const auto& r : rules.rules) message += " " + r.label;
    message += ")";
  }
  if (allow_empty) {
    warnings.push_back(message);
    return;
  }
  throw_usage(message + "; --allow-empty accepts an unchanged model");
}

}  // namespace slmopt::passes
