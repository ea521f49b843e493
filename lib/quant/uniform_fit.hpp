// Fitting x ~= scale * q + min over integer codes q in [qmin, qmax]: the core
// of every uniform scheme. Plain loops in a fixed order, compiled without FMA
// contraction, so the same input gives the same bits on every machine.
#pragma once

#include <cstdint>

namespace slmopt::quant {

struct UniformFit {
  float scale = 0;
  float min = 0;  // 0 for symmetric fits
};

struct CodeRange {
  int qmin, qmax;
  bool symmetric;  // min fixed at 0
};

CodeRange code_range(int bits, bool symmetric);

// Round-to-nearest: the range maps onto the codes (symmetric: the value of
// largest magnitude onto qmin, which uses every code, as llama.cpp's Q4_0).
UniformFit fit_range(const float* x, int64_t n, CodeRange r);

// Searches scale and min minimising sum w (x - xhat)^2 (w null = 1): candidate
// scales around the range fit, each refined by least squares on its codes.
UniformFit fit_search(const float* x, const float* w, int64_t n, CodeRange r);

inline int quantize_code(float x, const UniformFit& f, CodeRange r) {
  if (f.scale == 0) return r.symmetric ? 0 : r.qmin;
  float q = __builtin_nearbyintf((x - f.min) / f.scale);
  if (!(q >= static_cast<float>(r.qmin))) q = static_cast<float>(r.qmin);  // also catches nan
  if (q > static_cast<float>(r.qmax)) q = static_cast<float>(r.qmax);
  return static_cast<int>(q);
}

// Weighted squared error of quantizing x with f.
double fit_error(const float* x, const float* w, int64_t n, const UniformFit& f, CodeRange r);

// Given codes fixed by f, the least-squares scale (and min unless symmetric);
// returns f unchanged when the system is degenerate.
UniformFit refit(const float* x, const float* w, int64_t n, const UniformFit& f, CodeRange r);

}  // namespace slmopt::quant
