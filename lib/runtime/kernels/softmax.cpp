// Softmax, LogSoftmax and Hardmax. Before opset 13 the input is coerced to 2-D
// at `axis` (default 1); from 13 on they act along one axis (default -1).
#include <cmath>

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
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < inner; ++in) {
        auto at = [&](int64_t i) { return (o * len + i) * inner + in; };
        double mx = -INFINITY;
        int64_t arg = 0;
        for (int64_t i = 0; i < len; ++i)
          if (px[at(i)] > mx) {
            mx = px[at(i)];
            arg = i;
          }
        if (kind == Kind::Hardmax) {
          for (int64_t i = 0; i < len; ++i) po[at(i)] = T(i == arg ? 1 : 0);
          continue;
        }
        double sum = 0;
        for (int64_t i = 0; i < len; ++i) sum += std::exp(px[at(i)] - mx);
        for (int64_t i = 0; i < len; ++i)
          po[at(i)] = static_cast<T>(kind == Kind::Softmax ? std::exp(px[at(i)] - mx) / sum
                                                           : px[at(i)] - mx - std::log(sum));
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
