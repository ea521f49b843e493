// Picks the next token from logits: greedy (temperature 0), or a draw from the
// temperature-scaled softmax restricted to the top-k tokens and then to the
// smallest set whose probability reaches top-p. The draws come from a seeded
// mt19937_64 turned into [0, 1) by hand, so a seed gives the same tokens with
// any compiler and standard library.
#pragma once

#include <cstdint>
#include <random>
#include <span>

namespace slmopt::lm {

struct SamplingOptions {
  float temperature = 0;  // 0: greedy
  int64_t top_k = 0;      // 0: all tokens
  float top_p = 1;        // 1: no nucleus cut
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  int64_t next(std::span<const float> logits);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

// Index of the largest logit (the first of equals).
int64_t argmax(std::span<const float> logits);

}  // namespace slmopt::lm
