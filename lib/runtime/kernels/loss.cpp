// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (reduction none, sum,
// mean; class weights; ignore_index), as evaluation metrics use them.
#include <cmath>

#include "runtime/kernels/kernel_util.hpp"

namespace slmopt::runtime {
namespace {

// loss over input [N, C, d...] (log-probabilities) and target [N, d...].
template <class T>
Tensor nll(OpContext& c, const Tensor& input, const std::vector<int64_t>& target, const Tensor* weight) {
  if (input.rank() < 2) c.fail("input must have rank >= 2");
  const int64_t n = input.shape()[0], classes = input.shape()[1];
  const int64_t inner = (n != 0 && classes != 0) ? input.numel() / (n * classes) : 0;
  if (static_cast<int64_t>(target.size()) != n * inner) c.fail("target does not match the input's shape");
  const std::string reduction = c.attr_string("reduction", "mean");
  const bool has_ignore = c.attr("ignore_index") != nullptr;
  const int64_t ignore = c.attr_int("ignore_index", 0);
  std::vector<int64_t> shape = {n};
  shape.insert(shape.end(), input.shape().begin() + 2, input.shape().end());
  Tensor loss(input.dtype(), shape);
  double sum = 0, weight_sum = 0;
  const T* px = input.data<T>();
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t t = target[static_cast<size_t>(b * inner + i)];
      double l = 0, w = 0;
      if (!(has_ignore && t == ignore)) {
        if (t < 0 || t >= classes) c.fail("target class " + std::to_string(t) + " is out of range");
        w = weight ? static_cast<double>(weight->data<T>()[t]) : 1.0;
        l = -static_cast<double>(px[(b * classes + t) * inner + i]) * w;
      }
      loss.mutable_data<T>()[b * inner + i] = static_cast<T>(l);
      sum += l;
      weight_sum += w;
    }
  if (reduction == "none") return loss;
  if (reduction == "sum") return Tensor::from_values<T>(input.dtype(), {}, {static_cast<T>(sum)});
  if (reduction != "mean") c.fail("unknown reduction '" + reduction + "'");
  return Tensor::from_values<T>(input.dtype(), {}, {static_cast<T>(weight_sum != 0 ? sum / weight_sum : 0.0)});
}

void nll_loss_op(OpContext& c) {
  Tensor x = widen_to_float(c.input(0));
  Tensor w = c.has_input(2) ? widen_to_float(c.input(2)) : Tensor();
  const auto target = int_values(c.input(1));
  visit_float(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    c.output(0) = narrow_from_float(nll<T>(c, x, target, c.has_input(2) ? &w : nullptr), c.input(0).dtype());
  });
}

void softmax_cross_entropy_op(OpContext& c) {
  Tensor x = widen_to_float(c.input(0));
  if (x.rank() < 2) c.fail("scores must have rank >= 2");
  const int64_t n = x.shape()[0], classes = x.shape()[1];
  const int64_t inner = (n != 0 && classes != 0) ? x.numel() / (n * classes) : 0;
  Tensor log_prob(x.dtype(), x.shape());
  visit_float(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* pl = log_prob.mutable_data<T>();
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < inner; ++i) {
        auto at = [&](int64_t k) { return (b * classes + k) * inner + i; };
        double mx = -INFINITY, sum = 0;
        for (int64_t k = 0; k < classes; ++k) mx = std::max(mx, double(px[at(k)]));
        for (int64_t k = 0; k < classes; ++k) sum += std::exp(px[at(k)] - mx);
        for (int64_t k = 0; k < classes; ++k) pl[at(k)] = static_cast<T>(px[at(k)] - mx - std::log(sum));
      }
    Tensor w = c.has_input(2) ? widen_to_float(c.input(2)) : Tensor();
    c.output(0) = narrow_from_float(nll<T>(c, log_prob, int_values(c.input(1)), c.has_input(2) ? &w : nullptr),
                                    c.input(0).dtype());
  });
  if (c.wants_output(1)) c.output(1) = narrow_from_float(log_prob, c.input(0).dtype());
}

}  // namespace

void register_loss(KernelRegistry& r) {
  r.add("", "NegativeLogLikelihoodLoss", nll_loss_op);
  r.add("", "SoftmaxCrossEntropyLoss", softmax_cross_entropy_op);
}

}  // namespace slmopt::runtime
