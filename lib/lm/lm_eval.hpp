// Perplexity and next-token distribution metrics of a candidate language model
// against its reference, as llama.cpp's `perplexity --kl-divergence` reports
// them: the token stream is cut into windows of `context` tokens (each starting
// with BOS in place of its first token when the model has one), and the second
// half of every window is scored, so each scored token has at least half a
// window of context.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "lm/decoder_runner.hpp"

namespace slmopt::lm {

struct WindowOptions {
  int64_t context = 256;
  int64_t stride = 0;  // distance between window starts; 0: context (windows do not overlap)
  int64_t bos = -1;    // put in place of each window's first token when >= 0
};

std::vector<std::vector<int64_t>> token_windows(const std::vector<int64_t>& tokens, const WindowOptions& options);

struct WindowScore {
  int64_t scored = 0;
  double reference_nll = 0;  // summed -log p(actual next token)
  double candidate_nll = 0;
  double kl = 0;             // summed KL(p_reference || p_candidate)
  int64_t top1_agree = 0;    // positions whose most likely tokens agree
};

struct LmComparison {
  std::vector<WindowScore> windows;
  int64_t scored = 0;
  double reference_ppl = 0, candidate_ppl = 0;
  double kl_mean = 0;  // over scored tokens
  double kl_max = 0;   // the largest mean KL of one window
  double top1 = 0;                 // share of scored tokens
};

using WindowProgress = std::function<void(size_t done, size_t total)>;

LmComparison compare_language_models(DecoderRunner& reference, DecoderRunner& candidate,
                                     const std::vector<std::vector<int64_t>>& windows, const WindowProgress& progress = {});

// Natural-log softmax of one row of logits, in double.
std::vector<double> log_softmax(std::span<const float> logits);

}  // namespace slmopt::lm
