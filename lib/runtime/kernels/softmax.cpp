// Softmax, LogSoftmax and Hardmax. Before opset 13 the input is coerced to 2-D
// at `axis` (default 1); from 13 on they act along one axis (default -1).
#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/kernels/kernel_util.hpp"

namespace slmopt::runtime {
namespace {

enum class Kind { Softmax, LogSoftmax, Hardmax };

void softmax_family(OpContext& c, Kind kind) {
  Tensor x = widen_to_float(c.input(0));
  const bool legacy = c.opset > 0 && c.opset < 13;
  const int64_t axis = normalize_axis(c, c.attr_int("axis", legacy ? 1 : -1), x.rank());
  int64_t outer = 1, len = 1, inner = 1;
  for (int64_t d = 0; d < x.rank(); ++d) {
    const int64_t n = x.shape()[static_cast<size_t>(d)];
    if (legacy) (d < axis ? outer : len) *= n;
    else (d < axis ? outer : d == axis ? len : inner) *= n;
  }
  Tensor out(x.dtype(), x.shape());
  visit_float(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* po = out.mutable_data<T>();
    std::vector<double> e(static_cast<size_t>(len));  // each exponential, computed once
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < inner; ++in) {
        auto at = [&](int64_t i) { return (o * len + i) * inner + in; };
        if (kind == Kind::Hardmax) {
          double top = -INFINITY;
          int64_t arg = 0;
          for (int64_t i = 0; i < len; ++i)
            if (px[at(i)] > top) {
              top = px[at(i)];
              arg = i;
            }
          for (int64_t i = 0; i < len; ++i) po[at(i)] = T(i == arg ? 1 : 0);
          continue;
        }
        // The maximum over four running maxima: one chain of dependent
        // comparisons would wait on each other's latency.
        double m4[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
        int64_t i4 = 0;
        for (; i4 + 4 <= len; i4 += 4)
          for (int k = 0; k < 4; ++k) m4[k] = px[at(i4 + k)] > m4[k] ? px[at(i4 + k)] : m4[k];
        for (; i4 < len; ++i4) m4[0] = px[at(i4)] > m4[0] ? px[at(i4)] : m4[0];
        const double mx = std::max(std::max(m4[0], m4[1]), std::max(m4[2], m4[3]));
        double sum = 0;
        for (int64_t i = 0; i < len; ++i) {  // masked entries (-inf, half of a causal mask) need no exp
          const double v = px[at(i)];
          sum += (e[static_cast<size_t>(i)] = v == -INFINITY ? 0.0 : std::exp(v - mx));
        }
        const double log_sum = std::log(sum);
        for (int64_t i = 0; i < len; ++i)
          po[at(i)] = static_cast<T>(kind == Kind::Softmax ? e[static_cast<size_t>(i)] / sum : px[at(i)] - mx - log_sum);
      }
  });
  c.output(0) = narrow_from_float(out, c.input(0).dtype());
}

void softmax_op(OpContext& c) { softmax_family(c, Kind::Softmax); }
void log_softmax_op(OpContext& c) { softmax_family(c, Kind::LogSoftmax); }
void hardmax_op(OpContext& c) { softmax_family(c, Kind::Hardmax); }

}  // namespace

void register_softmax(KernelRegistry& r) {
  r.add("", "Softmax", softmax_op);
  r.add("", "LogSoftmax", log_softmax_op);
  r.add("", "Hardmax", hardmax_op);
}

}  // namespace slmopt::runtime
