#include "eval/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "runtime/numeric.hpp"

namespace slmopt::eval {

bool higher_is_better(const std::string& metric) {
  return metric == "cosine" || metric == "sqnr_db" || metric == "top1";
}

namespace {

std::vector<double> as_doubles(const Tensor& t) {
  Tensor d = runtime::cast_tensor(t, DType::F64);
  return {d.data<double>(), d.data<double>() + d.numel()};
}

bool rows_are_distributions(const std::vector<double>& v, int64_t row) {
  for (size_t r = 0; r + static_cast<size_t>(row) <= v.size(); r += static_cast<size_t>(row)) {
    double sum = 0;
    for (int64_t i = 0; i < row; ++i) {
      const double x = v[r + static_cast<size_t>(i)];
      if (x < 0 || x > 1) return false;
      sum += x;
    }
    if (std::abs(sum - 1) > 1e-3) return false;
  }
  return true;
}

std::vector<double> to_distribution(const double* x, int64_t n, bool already) {
  std::vector<double> p(x, x + n);
  if (already) return p;
  const double mx = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (auto& v : p) sum += (v = std::exp(v - mx));
  for (auto& v : p) v /= sum;
  return p;
}

}  // namespace

bool holds_distributions(const Tensor& t) {
  const int64_t row = t.rank() >= 1 ? t.shape().back() : 0;
  return row >= 2 && is_float(t.dtype()) && rows_are_distributions(as_doubles(t), row);
}

SampleMetrics compare_tensors(const Tensor& reference, const Tensor& candidate) {
  if (reference.shape() != candidate.shape())
    throw_bad_input("output shapes differ: reference " + shape_to_string(reference.shape()) + ", candidate " +
                    shape_to_string(candidate.shape()));
  if (reference.dtype() == DType::String || candidate.dtype() == DType::String)
    throw_bad_input("string outputs cannot be compared numerically");
  const auto r = as_doubles(reference), c = as_doubles(candidate);
  SampleMetrics m;
  double max_abs = 0, sum_abs = 0, err2 = 0, ref2 = 0, cand2 = 0, dot = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    const double d = c[i] - r[i];
    max_abs = std::max(max_abs, std::abs(d));
    sum_abs += std::abs(d);
    err2 += d * d;
    ref2 += r[i] * r[i];
    cand2 += c[i] * c[i];
    dot += r[i] * c[i];
  }
  const double n = static_cast<double>(std::max<size_t>(r.size(), 1));
  m["max_abs"] = max_abs;
  m["mean_abs"] = sum_abs / n;
  m["rel_l2"] = ref2 > 0 ? std::sqrt(err2 / ref2) : (err2 > 0 ? INFINITY : 0.0);
  m["cosine"] = (ref2 > 0 && cand2 > 0) ? dot / std::sqrt(ref2 * cand2) : (err2 == 0 ? 1.0 : 0.0);
  m["sqnr_db"] = err2 > 0 ? 10 * std::log10(ref2 / err2) : 200.0;  // identical outputs: capped, not infinite
  // Classifier-like: a last axis of at least 2 classes.
  const int64_t row = reference.rank() >= 1 ? reference.shape().back() : 0;
  if (row >= 2 && is_float(reference.dtype())) {
    const bool probs = rows_are_distributions(r, row) && rows_are_distributions(c, row);
    const size_t rows = r.size() / static_cast<size_t>(row);
    double agree = 0, kl = 0;
    for (size_t k = 0; k < rows; ++k) {
      const double* pr = r.data() + k * static_cast<size_t>(row);
      const double* pc = c.data() + k * static_cast<size_t>(row);
      agree += (std::max_element(pr, pr + row) - pr) == (std::max_element(pc, pc + row) - pc);
      auto p = to_distribution(pr, row, probs), q = to_distribution(pc, row, probs);
      for (int64_t i = 0; i < row; ++i)
        if (p[static_cast<size_t>(i)] > 0)
          kl += p[static_cast<size_t>(i)] * (std::log(p[static_cast<size_t>(i)]) - std::log(std::max(q[static_cast<size_t>(i)], 1e-300)));
    }
    if (rows) {
      m["top1"] = agree / static_cast<double>(rows);
      m["kl"] = kl / static_cast<double>(rows);
    }
  }
  return m;
}

namespace {
// Two-sided 95 % quantile of Student's t with df degrees of freedom.
double t_quantile_95(int df) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (df <= 0) return 0;
  if (df <= 30) return table[df - 1];
  return df <= 60 ? 2.000 : df <= 120 ? 1.980 : 1.960;
}
}  // namespace

std::map<std::string, Summary> summarize(const std::vector<SampleMetrics>& per_sample) {
  std::map<std::string, Summary> out;
  for (const auto& name : kMetricNames) {
    std::vector<double> v;
    for (const auto& s : per_sample)
      if (auto it = s.find(name); it != s.end()) v.push_back(it->second);
    if (v.empty()) continue;
    Summary s;
    s.samples = static_cast<int>(v.size());
    double sum = 0;
    for (double x : v) sum += x;
    s.mean = sum / static_cast<double>(v.size());
    double var = 0;
    for (double x : v) var += (x - s.mean) * (x - s.mean);
    const double sd = v.size() > 1 ? std::sqrt(var / static_cast<double>(v.size() - 1)) : 0;
    const double half = t_quantile_95(s.samples - 1) * sd / std::sqrt(static_cast<double>(v.size()));
    s.lower = s.mean - half;
    s.upper = s.mean + half;
    s.worst = higher_is_better(name) ? *std::min_element(v.begin(), v.end()) : *std::max_element(v.begin(), v.end());
    out[name] = s;
  }
  return out;
}

}  // namespace slmopt::eval
