#include "plan/measure.hpp"

#include <cmath>

#include "core/error.hpp"
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

class LanguageModelKl final : public ErrorMeasure {
 public:
  LanguageModelKl(const Model& reference, std::vector<std::vector<int64_t>> windows) : windows_(std::move(windows)) {
    if (windows_.empty()) throw_usage("the planner needs at least one window of text");
    lm::DecoderRunner runner(reference);
    vocab_ = static_cast<size_t>(runner.vocab());
    for (const auto& w : windows_) {
      runner.reset();
      const auto logits = runner.feed(w);
      std::vector<float> rows;
      for (size_t t = w.size() / 2; t + 1 < w.size(); ++t) {
        const auto lp = lm::log_softmax(std::span<const float>(logits.data() + t * vocab_, vocab_));
        rows.insert(rows.end(), lp.begin(), lp.end());
        ++scored_;
      }
      reference_.push_back(std::move(rows));
    }
  }

  std::string metric() const override { return "kl"; }

  double error(const Model& candidate) const override {
    lm::DecoderRunner runner(candidate);
    double kl = 0;
    for (size_t i = 0; i < windows_.size(); ++i) {
      const auto& w = windows_[i];
      runner.reset();
      const auto logits = runner.feed(w);
      size_t row = 0;
      for (size_t t = w.size() / 2; t + 1 < w.size(); ++t, ++row) {
        const auto lc = lm::log_softmax(std::span<const float>(logits.data() + t * vocab_, vocab_));
        const float* lr = reference_[i].data() + row * vocab_;
        double sum = 0;
        for (size_t v = 0; v < vocab_; ++v) sum += std::exp(static_cast<double>(lr[v])) * (lr[v] - lc[v]);
        kl += std::max(0.0, sum);
      }
    }
    return kl / static_cast<double>(std::max<int64_t>(1, scored_));
  }

 private:
  std::vector<std::vector<int64_t>> windows_;
  std::vector<std::vector<float>> reference_;  // log-probabilities of the scored positions
  size_t vocab_ = 0;
  int64_t scored_ = 0;
};

}  // namespace

std::unique_ptr<ErrorMeasure> output_error_measure(const Model& reference,
                                                   std::vector<std::map<std::string, Tensor>> samples,
                                                   const std::string& metric) {
  return std::make_unique<OutputError>(reference, std::move(samples), metric);
}

std::unique_ptr<ErrorMeasure> language_model_measure(const Model& reference, std::vector<std::vector<int64_t>> windows) {
  return std::make_unique<LanguageModelKl>(reference, std::move(windows));
}

}  // namespace slmopt::plan
