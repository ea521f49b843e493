#include "lm/lm_eval.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "lm/sampler.hpp"

namespace slmopt::lm {

std::vector<std::vector<int64_t>> token_windows(const std::vector<int64_t>& tokens, const WindowOptions& o) {
  if (o.context < 2) throw_usage("the window context must be at least 2 tokens");
  const int64_t stride = o.stride > 0 ? o.stride : o.context;
  std::vector<std::vector<int64_t>> windows;
  const auto n = static_cast<int64_t>(tokens.size());
  for (int64_t start = 0; start + o.context <= n; start += stride) {
    std::vector<int64_t> w(tokens.begin() + start, tokens.begin() + start + o.context);
    if (o.bos >= 0) w[0] = o.bos;
    windows.push_back(std::move(w));
  }
  if (windows.empty())
    throw_usage("the text has " + std::to_string(n) + " tokens, fewer than one window of " + std::to_string(o.context));
  return windows;
}

std::vector<double> log_softmax(std::span<const float> logits) {
  const double top = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - top);
  const double log_sum = top + std::log(sum);
  std::vector<double> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<double>(logits[i]) - log_sum;
  return out;
}

namespace {

WindowScore score_window(DecoderRunner& ref, DecoderRunner& cand, const std::vector<int64_t>& window) {
  ref.reset();
  cand.reset();
  const auto r = ref.feed(window);
  const auto c = cand.feed(window);
  const auto vocab = static_cast<size_t>(ref.vocab());
  WindowScore s;
  const size_t n = window.size();
  for (size_t t = n / 2; t + 1 < n; ++t) {
    const std::span<const float> rrow(r.data() + t * vocab, vocab), crow(c.data() + t * vocab, vocab);
    const auto lr = log_softmax(rrow), lc = log_softmax(crow);
    const auto next = static_cast<size_t>(window[t + 1]);
    s.reference_nll -= lr[next];
    s.candidate_nll -= lc[next];
    double kl = 0;
    for (size_t v = 0; v < vocab; ++v) kl += std::exp(lr[v]) * (lr[v] - lc[v]);
    s.kl += std::max(0.0, kl);
    s.top1_agree += argmax(rrow) == argmax(crow);
    ++s.scored;
  }
  return s;
}

}  // namespace

LmComparison compare_language_models(DecoderRunner& reference, DecoderRunner& candidate,
                                     const std::vector<std::vector<int64_t>>& windows, const WindowProgress& progress) {
  if (reference.vocab() != candidate.vocab())
    throw_usage("the models' vocabularies differ (" + std::to_string(reference.vocab()) + " and " +
                std::to_string(candidate.vocab()) + " tokens)");
  LmComparison out;
  double ref_nll = 0, cand_nll = 0, kl = 0;
  int64_t agree = 0;
  for (size_t i = 0; i < windows.size(); ++i) {
    out.windows.push_back(score_window(reference, candidate, windows[i]));
    const WindowScore& s = out.windows.back();
    out.scored += s.scored;
    ref_nll += s.reference_nll;
    cand_nll += s.candidate_nll;
    kl += s.kl;
    agree += s.top1_agree;
    out.kl_max = std::max(out.kl_max, s.kl / static_cast<double>(std::max<int64_t>(1, s.scored)));
    if (progress) progress(i + 1, windows.size());
  }
  const auto n = static_cast<double>(std::max<int64_t>(1, out.scored));
  out.reference_ppl = std::exp(ref_nll / n);
  out.candidate_ppl = std::exp(cand_nll / n);
  out.kl_mean = kl / n;
  out.top1 = static_cast<double>(agree) / n;
  return out;
}

}  // namespace slmopt::lm
