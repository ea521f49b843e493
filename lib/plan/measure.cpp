#include "plan/measure.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>

#include "core/error.hpp"
#include "core/parallel_errors.hpp"
#include "eval/metrics.hpp"
#include "lm/decoder_runner.hpp"
#include "lm/lm_eval.hpp"
#include "runtime/session.hpp"

namespace slmopt::plan {

double displayed_error(const std::string& metric, double additive) {
  return metric == "rel_l2" ? std::sqrt(std::max(0.0, additive)) : additive;
}

namespace {

class OutputError final : public ErrorMeasure {
 public:
  OutputError(const Model& reference, std::vector<std::map<std::string, Tensor>> samples, const std::string& metric)
      : samples_(std::move(samples)) {
    if (samples_.empty()) throw_usage("the planner needs at least one sample (--data, --input or --random)");
    const runtime::Session session(reference);
    for (const auto& s : samples_) reference_.push_back(session.run(s));
    bool all_distributions = true;
    for (const auto& [name, t] : reference_.front()) all_distributions = all_distributions && eval::holds_distributions(t);
    metric_ = metric == "auto" ? (all_distributions ? "kl" : "rel_l2") : metric;
    if (metric_ != "kl" && metric_ != "rel_l2") throw_usage("--metric takes auto, kl or rel_l2, got '" + metric + "'");
    if (metric_ == "kl")
      for (const auto& [name, t] : reference_.front())
        if (t.rank() < 1 || t.shape().back() < 2)
          throw_usage("--metric kl needs outputs with a class axis of 2 or more; output '" + name + "' has shape " +
                      shape_to_string(t.shape()));
  }

  std::string metric() const override { return metric_; }

  double error(const Model& candidate) const override {
    const runtime::Session session(candidate);
    double sum = 0;
    for (size_t i = 0; i < samples_.size(); ++i) {
      const auto outputs = session.run(samples_[i]);
      for (const auto& [name, want] : reference_[i]) {
        const auto m = eval::compare_tensors(want, outputs.at(name));
        if (metric_ == "kl") {
          sum += m.at("kl");
        } else {
          const double r = m.at("rel_l2");
          sum += r * r;
        }
      }
    }
    return sum / static_cast<double>(samples_.size());
  }

 private:
  std::vector<std::map<std::string, Tensor>> samples_;
  std::vector<std::map<std::string, Tensor>> reference_;
  std::string metric_;
};

// KL(reference || candidate) per scored position, from the reference's
// probabilities p kept once: with log q = c - logsumexp(c) for the candidate's
// logits c, KL = sum p log p - p.c + logsumexp(c) * sum p, so each candidate
// row costs one exponential per vocabulary entry and one dot product.
class LanguageModelKl final : public ErrorMeasure {
 public:
  LanguageModelKl(const Model& reference, std::vector<std::vector<int64_t>> windows) : windows_(std::move(windows)) {
    if (windows_.empty()) throw_usage("the planner needs at least one window of text");
    lm::DecoderRunner runner(reference);
    vocab_ = static_cast<size_t>(runner.vocab());
    for (const auto& w : windows_) {
      runner.reset();
      const auto logits = runner.feed(w);
      for (size_t t = w.size() / 2; t + 1 < w.size(); ++t) {
        const auto lp = lm::log_softmax(std::span<const float>(logits.data() + t * vocab_, vocab_));
        Row row{std::vector<double>(vocab_), 0, 0};
        for (size_t v = 0; v < vocab_; ++v) {
          row.p[v] = std::exp(lp[v]);
          row.p_log_p += row.p[v] * lp[v];
          row.p_sum += row.p[v];
        }
        rows_.push_back(std::move(row));
      }
    }
  }

  std::string metric() const override { return "kl"; }

  double error(const Model& candidate) const override {
    lm::DecoderRunner runner(candidate);
    double kl = 0;
    size_t next_row = 0;
    for (const auto& w : windows_) {
      runner.reset();
      const auto logits = runner.feed(w);
      for (size_t t = w.size() / 2; t + 1 < w.size(); ++t) {
        const Row& r = rows_[next_row++];
        const float* c = logits.data() + t * vocab_;
        const double top = *std::max_element(c, c + vocab_);
        double sum = 0, dot = 0;
        for (size_t v = 0; v < vocab_; ++v) {
          sum += std::exp(static_cast<double>(c[v]) - top);
          dot += r.p[v] * c[v];
        }
        kl += std::max(0.0, r.p_log_p - dot + (top + std::log(sum)) * r.p_sum);
      }
    }
    return kl / static_cast<double>(std::max<size_t>(1, rows_.size()));
  }

 private:
  struct Row {
    std::vector<double> p;  // the reference's next-token probabilities
    double p_log_p, p_sum;
  };
  std::vector<std::vector<int64_t>> windows_;
  std::vector<Row> rows_;  // one per scored position, window by window
  size_t vocab_ = 0;
};

}  // namespace

std::vector<double> measure_many(const ErrorMeasure& measure, size_t count, const std::function<Model(size_t)>& make,
                                 const std::function<void(size_t)>& finished) {
  std::vector<double> errors(count, 0.0);
  ParallelErrors failures;
  std::mutex lock;
  const auto n = static_cast<int64_t>(count);
#pragma omp parallel for schedule(dynamic, 1) if (count > 1)
  for (int64_t i = 0; i < n; ++i)
    failures.run(i, [&] {
      errors[static_cast<size_t>(i)] = measure.error(make(static_cast<size_t>(i)));
      const std::lock_guard<std::mutex> hold(lock);
      if (finished) finished(static_cast<size_t>(i));
    });
  failures.rethrow();
  return errors;
}

std::unique_ptr<ErrorMeasure> output_error_measure(const Model& reference,
                                                   std::vector<std::map<std::string, Tensor>> samples,
                                                   const std::string& metric) {
  return std::make_unique<OutputError>(reference, std::move(samples), metric);
}

std::unique_ptr<ErrorMeasure> language_model_measure(const Model& reference, std::vector<std::vector<int64_t>> windows) {
  return std::make_unique<LanguageModelKl>(reference, std::move(windows));
}

}  // namespace slmopt::plan
