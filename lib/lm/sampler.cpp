#include "lm/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.hpp"

namespace slmopt::lm {

int64_t argmax(std::span<const float> logits) {
  if (logits.empty()) throw_internal("argmax of no logits");
  return std::max_element(logits.begin(), logits.end()) - logits.begin();
}

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {
  if (options.temperature < 0) throw_usage("--temperature must be 0 or more");
  if (options.top_k < 0) throw_usage("--top-k must be 0 or more");
  if (!(options.top_p > 0 && options.top_p <= 1)) throw_usage("--top-p must be in (0, 1]");
}

int64_t Sampler::next(std::span<const float> logits) {
  if (options_.temperature == 0) return argmax(logits);
  std::vector<int64_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  // Larger logit first; the lower id first among equals, so the order is total.
  auto before = [&](int64_t a, int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  size_t keep = order.size();
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < keep) {
    keep = static_cast<size_t>(options_.top_k);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep), order.end(), before);
  } else {
    std::sort(order.begin(), order.end(), before);
  }
  order.resize(keep);
  std::vector<double> probs(keep);
  const double top = logits[order[0]];
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += probs[i] = std::exp((logits[order[i]] - top) / options_.temperature);
  double cumulative = 0;
  size_t nucleus = keep;
  for (size_t i = 0; i < keep; ++i) {
    cumulative += probs[i] / sum;
    if (cumulative >= options_.top_p) {
      nucleus = i + 1;
      break;
    }
  }
  const double total = std::accumulate(probs.begin(), probs.begin() + static_cast<std::ptrdiff_t>(nucleus), 0.0);
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * total;
  double acc = 0;
  for (size_t i = 0; i < nucleus; ++i) {
    acc += probs[i];
    if (u < acc) return order[i];
  }
  return order[nucleus - 1];
}

}  // namespace slmopt::lm
