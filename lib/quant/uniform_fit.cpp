#include "quant/uniform_fit.hpp"

#include <cmath>

namespace slmopt::quant {

CodeRange code_range(int bits, bool symmetric) {
  if (symmetric) return {-(1 << (bits - 1)), (1 << (bits - 1)) - 1, true};
  return {0, (1 << bits) - 1, false};
}

UniformFit fit_range(const float* x, int64_t n, CodeRange r) {
  if (n == 0) return {};
  if (r.symmetric) {
    float extreme = 0;
    for (int64_t i = 0; i < n; ++i)
      if (std::fabs(x[i]) > std::fabs(extreme)) extreme = x[i];
    // Codes [0, qmax] (unsigned scales of a super-block) map the largest value to qmax.
    return {extreme / static_cast<float>(r.qmin < 0 ? r.qmin : r.qmax), 0.0f};
  }
  float lo = x[0], hi = x[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  return {(hi - lo) / static_cast<float>(r.qmax - r.qmin), lo};
}

double fit_error(const float* x, const float* w, int64_t n, const UniformFit& f, CodeRange r) {
  double err = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float xhat = f.scale * static_cast<float>(quantize_code(x[i], f, r)) + f.min;
    const double d = static_cast<double>(x[i]) - static_cast<double>(xhat);
    err += (w ? w[i] : 1.0) * d * d;
  }
  return err;
}

UniformFit refit(const float* x, const float* w, int64_t n, const UniformFit& f, CodeRange r) {
  double sw = 0, sl = 0, sl2 = 0, sx = 0, sxl = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double wi = w ? w[i] : 1.0;
    const double l = quantize_code(x[i], f, r);
    sw += wi;
    sl += wi * l;
    sl2 += wi * l * l;
    sx += wi * x[i];
    sxl += wi * x[i] * l;
  }
  if (r.symmetric) {
    if (sl2 <= 0) return f;
    return {static_cast<float>(sxl / sl2), 0.0f};
  }
  const double det = sw * sl2 - sl * sl;
  if (!(det > 1e-12 * sw * sl2)) return f;
  return {static_cast<float>((sw * sxl - sx * sl) / det), static_cast<float>((sl2 * sx - sl * sxl) / det)};
}

UniformFit fit_search(const float* x, const float* w, int64_t n, CodeRange r) {
  const UniformFit base = fit_range(x, n, r);
  if (n == 0 || base.scale == 0) return base;
  UniformFit best = base;
  double best_err = fit_error(x, w, n, base, r);
  // Shrinking the range clips the tails and refines the steps; candidates from
  // 45% to 110% of the full range cover every optimum we have seen at 1-8 bits.
  constexpr int kSteps = 26;
  for (int s = 0; s < kSteps; ++s) {
    const float factor = 0.45f + 0.025f * static_cast<float>(s);
    UniformFit f = base;
    f.scale = base.scale * factor;
    if (!r.symmetric) {
      // Keep the candidate range centred on the values' range.
      const float span = base.scale * static_cast<float>(r.qmax - r.qmin);
      f.min = base.min + 0.5f * span * (1.0f - factor);
    }
    for (int iter = 0; iter < 3; ++iter) {
      const UniformFit g = refit(x, w, n, f, r);
      if (g.scale == f.scale && g.min == f.min) break;
      f = g;
    }
    const double err = fit_error(x, w, n, f, r);
    if (err < best_err) {
      best_err = err;
      best = f;
    }
  }
  return best;
}

}  // namespace slmopt::quant
