#include "train/distill.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <omp.h>
#include <random>

#include "core/error.hpp"
#include "core/parallel_errors.hpp"

namespace slmopt::train {
namespace {

// Linear warm-up over the first 10 % of steps, then a cosine decay to 0.
double scheduled_rate(double peak, int64_t step, int64_t steps) {
  const double warm = std::max(1.0, 0.1 * static_cast<double>(steps));
  if (static_cast<double>(step) < warm) return peak * static_cast<double>(step + 1) / warm;
  const double t = (static_cast<double>(step) - warm) / std::max(1.0, static_cast<double>(steps) - warm);
  return peak * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
}

struct Window {
  size_t sequence;
  size_t start;
};

}  // namespace

DistillReport distill(LlamaWeights& w, const std::vector<std::vector<int64_t>>& sequences, const FakeQuantize& fake_quantize,
                      const DistillOptions& o, const StepProgress& progress) {
  if (o.steps <= 0 || o.batch <= 0 || o.window < 2 || !(o.learning_rate > 0))
    throw_usage("fine-tuning needs steps, batch and learning rate above 0 and windows of 2 or more tokens");
  std::vector<size_t> usable;
  for (size_t i = 0; i < sequences.size(); ++i)
    if (sequences[i].size() >= 2) usable.push_back(i);
  if (usable.empty()) throw_usage("fine-tuning needs calibration text of at least 2 tokens");
  if (!o.freeze_at.empty() && o.freeze_at.size() != w.values.size())
    throw_usage("fine-tuning: a freezing step for each of the " + std::to_string(w.values.size()) + " weights, got " +
                std::to_string(o.freeze_at.size()));
  auto frozen_from = [&](size_t i) { return o.freeze_at.empty() ? int64_t{-1} : o.freeze_at[i]; };
  const LlamaLayout& l = w.layout;
  const std::vector<Matrix> teacher = w.values;  // the original model
  const size_t n = w.values.size();
  std::vector<Matrix> effective(n), grads(n), m(n), v(n);
  for (size_t i = 0; i < n; ++i) {
    m[i] = v[i] = Matrix::Zero(w.values[i].rows(), w.values[i].cols());
  }
  // Pruned weights (exact zeros) stay pruned: their updates are dropped.
  std::vector<std::vector<Eigen::Index>> zeros(n);
  for (size_t i = 0; i < n; ++i)
    for (Eigen::Index e = 0; e < w.values[i].size(); ++e)
      if (w.values[i].data()[e] == 0.0f) zeros[i].push_back(e);
  std::mt19937_64 rng(o.seed);
  // Sequences a step runs at once, each with its own gradient buffers, added
  // in sequence order: the sum does not depend on the thread count.
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(o.batch, omp_get_max_threads()));
  std::vector<std::vector<Matrix>> partial(static_cast<size_t>(chunk), std::vector<Matrix>(n));
  DistillReport report;
  report.steps = o.steps;
  const int64_t tail = std::max<int64_t>(1, o.steps / 10);
  double first = 0, last = 0;
  const double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
  for (int64_t step = 0; step < o.steps; ++step) {
    std::vector<Window> batch;
    for (int64_t b = 0; b < o.batch; ++b) {
      const size_t s = usable[static_cast<size_t>(rng() % usable.size())];
      const size_t len = std::min<size_t>(static_cast<size_t>(o.window), sequences[s].size());
      batch.push_back({s, static_cast<size_t>(rng() % (sequences[s].size() - len + 1))});
    }
    // Each weight is quantized on its own (a trellis search takes a while).
    ParallelErrors quantize_failures;
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t i = 0; i < n; ++i) {
      quantize_failures.run(static_cast<int64_t>(i), [&] {
        const int64_t freeze = frozen_from(i);
        if (freeze < 0 || step == freeze) fake_quantize(i, w.values[i], effective[i]);
        else if (step < freeze) effective[i] = w.values[i];
      });
      grads[i].setZero(w.values[i].rows(), w.values[i].cols());
    }
    quantize_failures.rethrow();
    double loss = 0;
    for (int64_t b0 = 0; b0 < o.batch; b0 += chunk) {
      const int64_t count = std::min(chunk, o.batch - b0);
      std::vector<double> losses(static_cast<size_t>(count));
      ParallelErrors failures;
#pragma omp parallel for num_threads(static_cast<int>(count)) schedule(static, 1)
      for (int64_t j = 0; j < count; ++j) {
        failures.run(j, [&] {
          const Window& win = batch[static_cast<size_t>(b0 + j)];
          const auto& seq = sequences[win.sequence];
          const size_t len = std::min<size_t>(static_cast<size_t>(o.window), seq.size());
          const std::vector<int64_t> tokens(seq.begin() + static_cast<std::ptrdiff_t>(win.start),
                                            seq.begin() + static_cast<std::ptrdiff_t>(win.start + len));
          auto& g = partial[static_cast<size_t>(j)];
          for (size_t i = 0; i < n; ++i) g[i].setZero(w.values[i].rows(), w.values[i].cols());
          const Matrix target = log_softmax_rows(llama_logits(l, teacher, tokens));
          losses[static_cast<size_t>(j)] =
              llama_distill_step(l, effective, tokens, target, 1.0f / static_cast<float>(o.batch), g);
        });
      }
      failures.rethrow();
      for (int64_t j = 0; j < count; ++j) {
        for (size_t i = 0; i < n; ++i) grads[i] += partial[static_cast<size_t>(j)][i];
        loss += losses[static_cast<size_t>(j)] / static_cast<double>(o.batch);
      }
    }
    const double rate = scheduled_rate(o.learning_rate, step, o.steps);
    const double c1 = 1.0 - std::pow(beta1, static_cast<double>(step + 1)),
                 c2 = 1.0 - std::pow(beta2, static_cast<double>(step + 1));
    for (size_t i = 0; i < n; ++i) {
      if (frozen_from(i) >= 0 && step >= frozen_from(i)) continue;
      m[i] = static_cast<float>(beta1) * m[i] + static_cast<float>(1 - beta1) * grads[i];
      v[i] = static_cast<float>(beta2) * v[i] + static_cast<float>(1 - beta2) * grads[i].cwiseProduct(grads[i]);
      w.values[i].array() -= static_cast<float>(rate) * (m[i].array() / static_cast<float>(c1)) /
                             ((v[i].array() / static_cast<float>(c2)).sqrt() + static_cast<float>(epsilon));
      for (Eigen::Index e : zeros[i]) w.values[i].data()[e] = 0.0f;
    }
    if (step < tail) first += loss / static_cast<double>(tail);
    if (step >= o.steps - tail) last += loss / static_cast<double>(tail);
    if (progress) progress(step + 1, o.steps, loss);
  }
  report.first_loss = first;
  report.last_loss = last;
  return report;
}

}  // namespace slmopt::train
