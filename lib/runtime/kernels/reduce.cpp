// Reduce* ops (axes as attribute before opset 18 — 13 for ReduceSum — and as an
// input after), ArgMax and ArgMin.
#include <cmath>
#include <limits>

#include "runtime/kernels/kernel_util.hpp"

namespace slmopt::runtime {
namespace {

enum class Reduction { Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp, SumSquare };

struct Reduced {
  std::vector<bool> reduce;       // per input dim
  std::vector<int64_t> out_shape;
  bool noop = false;
};

Reduced reduced_axes(OpContext& c, int64_t rank, int axes_input_opset) {
  std::vector<int64_t> axes;
  bool given = false;
  if (c.opset >= axes_input_opset) {
    if (c.has_input(1)) {
      axes = int_values(c.input(1));
      given = true;
    }
  } else if (c.attr("axes")) {
    axes = c.attr_ints("axes");
    given = true;
  }
  Reduced r;
  r.reduce.assign(static_cast<size_t>(rank), false);
  if (!given || axes.empty()) {
    if (c.attr_int("noop_with_empty_axes", 0) != 0) r.noop = true;
    else r.reduce.assign(static_cast<size_t>(rank), true);
  }
  for (int64_t a : axes) r.reduce[static_cast<size_t>(normalize_axis(c, a, rank))] = true;
  return r;
}

void reduce(OpContext& c, Reduction kind, int axes_input_opset = 18) {
  const Tensor& in = c.input(0);
  Tensor x = widen_to_float(in);
  Reduced r = reduced_axes(c, x.rank(), axes_input_opset);
  const bool keep = c.attr_int("keepdims", 1) != 0;
  if (r.noop) {
    c.output(0) = in;
    return;
  }
  std::vector<int64_t> kept_shape = x.shape();
  for (size_t d = 0; d < kept_shape.size(); ++d)
    if (r.reduce[d]) kept_shape[d] = 1;
  std::vector<int64_t> out_shape;
  for (size_t d = 0; d < kept_shape.size(); ++d)
    if (keep || !r.reduce[d]) out_shape.push_back(kept_shape[d]);
  Tensor out(x.dtype(), out_shape);
  auto out_strides = broadcast_strides(kept_shape, x.shape());
  visit_arithmetic(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t n_out = out.numel();
    std::vector<double> acc(static_cast<size_t>(n_out));
    double init = 0;
    if (kind == Reduction::Max) init = -std::numeric_limits<double>::infinity();
    if (kind == Reduction::Min) init = std::numeric_limits<double>::infinity();
    if (kind == Reduction::Prod) init = 1;
    std::fill(acc.begin(), acc.end(), init);
    const T* px = x.data<T>();
    for_each_broadcast2(x.shape(), strides_of(x.shape()), out_strides, [&](int64_t, int64_t ix, int64_t io) {
      const double v = static_cast<double>(px[ix]);
      double& a = acc[static_cast<size_t>(io)];
      switch (kind) {
        case Reduction::Sum:
        case Reduction::Mean:
        case Reduction::LogSum: a += v; break;
        case Reduction::Max: a = std::max(a, v); break;
        case Reduction::Min: a = std::min(a, v); break;
        case Reduction::Prod: a *= v; break;
        case Reduction::L1: a += std::abs(v); break;
        case Reduction::L2:
        case Reduction::SumSquare: a += v * v; break;
        case Reduction::LogSumExp: a += std::exp(v); break;
      }
    });
    const double count = n_out ? static_cast<double>(x.numel()) / static_cast<double>(n_out) : 0;
    T* po = out.mutable_data<T>();
    for (int64_t i = 0; i < n_out; ++i) {
      double r_i = acc[static_cast<size_t>(i)];
      if (kind == Reduction::Mean) r_i /= count;
      if (kind == Reduction::L2) r_i = std::sqrt(r_i);
      if (kind == Reduction::LogSum || kind == Reduction::LogSumExp) r_i = std::log(r_i);
      if constexpr (std::is_integral_v<T>) {
        if ((kind == Reduction::Max || kind == Reduction::Min) && std::isinf(r_i))
          r_i = kind == Reduction::Max ? static_cast<double>(std::numeric_limits<T>::lowest())
                                       : static_cast<double>(std::numeric_limits<T>::max());
      }
      po[i] = static_cast<T>(r_i);
    }
  });
  c.output(0) = narrow_from_float(out, in.dtype());
}

void reduce_sum_op(OpContext& c) { reduce(c, Reduction::Sum, 13); }
void reduce_mean_op(OpContext& c) { reduce(c, Reduction::Mean); }
void reduce_max_op(OpContext& c) { reduce(c, Reduction::Max); }
void reduce_min_op(OpContext& c) { reduce(c, Reduction::Min); }
void reduce_prod_op(OpContext& c) { reduce(c, Reduction::Prod); }
void reduce_l1_op(OpContext& c) { reduce(c, Reduction::L1); }
void reduce_l2_op(OpContext& c) { reduce(c, Reduction::L2); }
void reduce_log_sum_op(OpContext& c) { reduce(c, Reduction::LogSum); }
void reduce_log_sum_exp_op(OpContext& c) { reduce(c, Reduction::LogSumExp); }
void reduce_sum_square_op(OpContext& c) { reduce(c, Reduction::SumSquare); }

void arg_extreme(OpContext& c, bool want_max) {
  Tensor x = widen_to_float(c.input(0));
  const int64_t axis = normalize_axis(c, c.attr_int("axis", 0), x.rank());
  const bool keep = c.attr_int("keepdims", 1) != 0, last = c.attr_int("select_last_index", 0) != 0;
  int64_t outer = 1, len = x.shape()[static_cast<size_t>(axis)], inner = 1;
  for (int64_t d = 0; d < x.rank(); ++d)
    if (d < axis) outer *= x.shape()[static_cast<size_t>(d)];
    else if (d > axis) inner *= x.shape()[static_cast<size_t>(d)];
  std::vector<int64_t> out_shape = x.shape();
  if (keep) out_shape[static_cast<size_t>(axis)] = 1;
  else out_shape.erase(out_shape.begin() + axis);
  Tensor out(DType::I64, out_shape);
  visit_numeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < inner; ++in) {
        int64_t best = 0;
        for (int64_t i = 1; i < len; ++i) {
          const T v = px[(o * len + i) * inner + in], b = px[(o * len + best) * inner + in];
          const bool better = want_max ? (last ? v >= b : v > b) : (last ? v <= b : v < b);
          if (better) best = i;
        }
        out.mutable_data<int64_t>()[o * inner + in] = best;
      }
  });
  c.output(0) = std::move(out);
}
void argmax_op(OpContext& c) { arg_extreme(c, true); }
void argmin_op(OpContext& c) { arg_extreme(c, false); }

}  // namespace

void register_reduce(KernelRegistry& r) {
  const std::pair<const char*, KernelFn> ops[] = {
      {"ReduceSum", reduce_sum_op},       {"ReduceMean", reduce_mean_op}, {"ReduceMax", reduce_max_op},
      {"ReduceMin", reduce_min_op},       {"ReduceProd", reduce_prod_op}, {"ReduceL1", reduce_l1_op},
      {"ReduceL2", reduce_l2_op},         {"ReduceLogSum", reduce_log_sum_op},
      {"ReduceLogSumExp", reduce_log_sum_exp_op}, {"ReduceSumSquare", reduce_sum_square_op},
      {"ArgMax", argmax_op},              {"ArgMin", argmin_op},
  };
  for (const auto& [name, fn] : ops) r.add("", name, fn);
}

}  // namespace slmopt::runtime
