// Quantization-aware distillation: trains a Llama decoder's f32 weights so
// that the model with its weights quantized (as the quantize pass will
// quantize them) predicts what the original model predicts. Each step runs
// the fake-quantized model on a batch of windows of calibration tokens,
// takes the gradient of KL(original || quantized) and applies it to the
// float weights (straight-through: rounding counts as the identity), with
// Adam under a warm-up and cosine schedule. After training the caller
// quantizes the trained weights with the same function the steps used, so
// the codes written are the codes trained for.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "train/llama_backprop.hpp"

namespace slmopt::train {

struct DistillOptions {
  int64_t steps = 0;
  double learning_rate = 1e-4;
  int64_t batch = 8;     // windows a step
  int64_t window = 128;  // tokens a window
  uint64_t seed = 1;
  // Per weight (empty: none): the step from which it is quantized once and
  // no longer trained; before it the weight trains as a float, so the ones
  // frozen later make up for its error. -1: fake-quantized at every step.
  std::vector<int64_t> freeze_at;
};

struct DistillReport {
  int64_t steps = 0;
  double first_loss = 0, last_loss = 0;  // mean KL of the first and the last 10 % of steps' batches
};

// Writes into `effective` the value the model computes with for weight
// `index` (its quantized-then-dequantized `latent`, or `latent` itself).
using FakeQuantize = std::function<void(size_t index, const Matrix& latent, Matrix& effective)>;
using StepProgress = std::function<void(int64_t step, int64_t steps, double loss)>;

// Trains w.values in place on windows cut from `sequences` (token ids; each
// at least 2 tokens). Deterministic: the same inputs, options and seed give
// the same weights whatever the thread count. Weights that are exactly 0
// (pruned) stay 0. A frozen weight keeps its value from the step it froze,
// so quantizing it after training gives the codes trained around.
DistillReport distill(LlamaWeights& w, const std::vector<std::vector<int64_t>>& sequences, const FakeQuantize& fake_quantize,
                      const DistillOptions& options, const StepProgress& progress = {});

}  // namespace slmopt::train
