// Element-wise ops of one input: activations and math functions (ONNX opset <= 23).
// Float ops run on f32/f64, f16/bf16 are widened to f32 and rounded back.
#include <cmath>

#include "runtime/kernels/kernel_util.hpp"

namespace slmopt::runtime {
namespace {

// Applies fn to every element. Integer inputs are accepted (and fn instantiated
// for them) only when Ints is set.
template <bool Ints = false, class Fn>
void unary(OpContext& ctx, Fn fn) {
  const Tensor& in = ctx.input(0);
  Tensor x = widen_to_float(in);
  Tensor out(x.dtype(), x.shape());
  visit_numeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, bool>) {
      ctx.fail("does not accept bool tensors");
    } else {
      if constexpr (!std::is_floating_point_v<T> && !Ints) {
        ctx.fail(std::string("does not accept ") + dtype_name(in.dtype()));
      } else {
        const T* s = x.data<T>();
        T* d = out.mutable_data<T>();
        for (int64_t i = 0; i < x.numel(); ++i) d[i] = static_cast<T>(fn(s[i]));
      }
    }
  });
  ctx.output(0) = narrow_from_float(out, in.dtype());
}

template <class T>
T sign_of(T x) {
  return static_cast<T>((T(0) < x) - (x < T(0)));
}

void abs_op(OpContext& c) {
  unary<true>(c, [](auto x) {
    if constexpr (std::is_unsigned_v<decltype(x)>) return x;
    else return x < 0 ? -x : x;
  });
}
void neg_op(OpContext& c) { unary<true>(c, [](auto x) { return -x; }); }
void sign_op(OpContext& c) { unary<true>(c, [](auto x) { return sign_of(x); }); }
void relu_op(OpContext& c) { unary<true>(c, [](auto x) { return x > 0 ? x : decltype(x)(0); }); }
void exp_op(OpContext& c) { unary(c, [](auto x) { return std::exp(x); }); }
void log_op(OpContext& c) { unary(c, [](auto x) { return std::log(x); }); }
void sqrt_op(OpContext& c) { unary(c, [](auto x) { return std::sqrt(x); }); }
void reciprocal_op(OpContext& c) { unary(c, [](auto x) { return decltype(x)(1) / x; }); }
void floor_op(OpContext& c) { unary(c, [](auto x) { return std::floor(x); }); }
void ceil_op(OpContext& c) { unary(c, [](auto x) { return std::ceil(x); }); }
void round_op(OpContext& c) { unary(c, [](auto x) { return std::nearbyint(x); }); }  // half to even
void erf_op(OpContext& c) { unary(c, [](auto x) { return std::erf(x); }); }
void tanh_op(OpContext& c) { unary(c, [](auto x) { return std::tanh(x); }); }
void sin_op(OpContext& c) { unary(c, [](auto x) { return std::sin(x); }); }
void cos_op(OpContext& c) { unary(c, [](auto x) { return std::cos(x); }); }
void tan_op(OpContext& c) { unary(c, [](auto x) { return std::tan(x); }); }
void asin_op(OpContext& c) { unary(c, [](auto x) { return std::asin(x); }); }
void acos_op(OpContext& c) { unary(c, [](auto x) { return std::acos(x); }); }
void atan_op(OpContext& c) { unary(c, [](auto x) { return std::atan(x); }); }
void sinh_op(OpContext& c) { unary(c, [](auto x) { return std::sinh(x); }); }
void cosh_op(OpContext& c) { unary(c, [](auto x) { return std::cosh(x); }); }
void asinh_op(OpContext& c) { unary(c, [](auto x) { return std::asinh(x); }); }
void acosh_op(OpContext& c) { unary(c, [](auto x) { return std::acosh(x); }); }
void atanh_op(OpContext& c) { unary(c, [](auto x) { return std::atanh(x); }); }
void sigmoid_op(OpContext& c) {
  unary(c, [](auto x) {
    using T = decltype(x);
    return x >= 0 ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
  });
}
void softplus_op(OpContext& c) {
  unary(c, [](auto x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); });
}
void softsign_op(OpContext& c) { unary(c, [](auto x) { return x / (decltype(x)(1) + std::abs(x)); }); }
void mish_op(OpContext& c) {
  unary(c, [](auto x) { return x * std::tanh(x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x))); });
}
void leaky_relu_op(OpContext& c) {
  const double a = c.attr_float("alpha", 0.01f);
  // Branch-free, so the loop vectorizes (GCC will not speculate the multiply
  // of `x >= 0 ? x : x * a` under the default -ftrapping-math). Same values,
  // signed zeros, infinities and NaNs as that form.
  unary(c, [a](auto x) {
    using T = decltype(x);
    return std::max(x, T(0)) + static_cast<T>(a) * std::min(x, T(0));
  });
}
void elu_op(OpContext& c) {
  const double a = c.attr_float("alpha", 1.0f);
  unary(c, [a](auto x) { return x >= 0 ? x : static_cast<decltype(x)>(a * (std::exp(x) - 1)); });
}
void celu_op(OpContext& c) {
  const double a = c.attr_float("alpha", 1.0f);
  unary(c, [a](auto x) {
    return static_cast<decltype(x)>(std::max(0.0, double(x)) + std::min(0.0, a * (std::exp(double(x) / a) - 1)));
  });
}
void selu_op(OpContext& c) {
  const double a = c.attr_float("alpha", 1.67326319217681884765625f);
  const double g = c.attr_float("gamma", 1.05070102214813232421875f);
  unary(c, [a, g](auto x) {
    return static_cast<decltype(x)>(x > 0 ? g * x : g * (a * std::exp(double(x)) - a));
  });
}
void thresholded_relu_op(OpContext& c) {
  const double a = c.attr_float("alpha", 1.0f);
  unary(c, [a](auto x) { return x > a ? x : decltype(x)(0); });
}
void hard_sigmoid_op(OpContext& c) {
  const double a = c.attr_float("alpha", 0.2f), b = c.attr_float("beta", 0.5f);
  unary(c, [a, b](auto x) { return static_cast<decltype(x)>(std::max(0.0, std::min(1.0, a * x + b))); });
}
void hard_swish_op(OpContext& c) {
  unary(c, [](auto x) {
    return static_cast<decltype(x)>(x * std::max(0.0, std::min(1.0, x / 6.0 + 0.5)));
  });
}
void shrink_op(OpContext& c) {
  const double bias = c.attr_float("bias", 0.0f), lambd = c.attr_float("lambd", 0.5f);
  unary<true>(c, [bias, lambd](auto x) {
    using T = decltype(x);
    return x < -lambd ? static_cast<T>(x + bias) : x > lambd ? static_cast<T>(x - bias) : T(0);
  });
}
void gelu_op(OpContext& c) {
  const bool tanh_approx = c.attr_string("approximate", "none") == "tanh";
  unary(c, [tanh_approx](auto x) {
    const double v = x;
    const double r = tanh_approx ? 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))
                                 : 0.5 * v * (1 + std::erf(v / 1.4142135623730951));
    return static_cast<decltype(x)>(r);
  });
}

// Outputs of a different type than the input.
void not_op(OpContext& c) {
  const Tensor& x = c.input(0);
  if (x.dtype() != DType::Bool) c.fail("Not takes bool tensors");
  Tensor out(DType::Bool, x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) out.mutable_data<bool>()[i] = !x.data<bool>()[i];
  c.output(0) = std::move(out);
}

template <class Pred>
void float_predicate(OpContext& c, Pred pred) {
  Tensor x = widen_to_float(c.input(0));
  Tensor out(DType::Bool, x.shape());
  bool* d = out.mutable_data<bool>();
  visit_float(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* s = x.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) d[i] = pred(static_cast<double>(s[i]));
  });
  c.output(0) = std::move(out);
}
void isnan_op(OpContext& c) { float_predicate(c, [](double x) { return std::isnan(x); }); }
void isinf_op(OpContext& c) {
  const bool neg = c.attr_int("detect_negative", 1) != 0, pos = c.attr_int("detect_positive", 1) != 0;
  float_predicate(c, [neg, pos](double x) { return std::isinf(x) && ((x > 0 && pos) || (x < 0 && neg)); });
}

}  // namespace

void register_elementwise_unary(KernelRegistry& r) {
  const std::pair<const char*, KernelFn> ops[] = {
      {"Abs", abs_op},         {"Neg", neg_op},           {"Sign", sign_op},
      {"Relu", relu_op},       {"Exp", exp_op},           {"Log", log_op},
      {"Sqrt", sqrt_op},       {"Reciprocal", reciprocal_op}, {"Floor", floor_op},
      {"Ceil", ceil_op},       {"Round", round_op},       {"Erf", erf_op},
      {"Tanh", tanh_op},       {"Sin", sin_op},           {"Cos", cos_op},
      {"Tan", tan_op},         {"Asin", asin_op},         {"Acos", acos_op},
      {"Atan", atan_op},       {"Sinh", sinh_op},         {"Cosh", cosh_op},
      {"Asinh", asinh_op},     {"Acosh", acosh_op},       {"Atanh", atanh_op},
      {"Sigmoid", sigmoid_op}, {"Softplus", softplus_op}, {"Softsign", softsign_op},
      {"Mish", mish_op},       {"LeakyRelu", leaky_relu_op}, {"Elu", elu_op},
      {"Celu", celu_op},       {"Selu", selu_op},         {"ThresholdedRelu", thresholded_relu_op},
      {"HardSigmoid", hard_sigmoid_op}, {"HardSwish", hard_swish_op}, {"Shrink", shrink_op},
      {"Gelu", gelu_op},       {"Not", not_op},           {"IsNaN", isnan_op},
      {"IsInf", isinf_op},
  };
  for (const auto& [name, fn] : ops) r.add("", name, fn);
}

}  // namespace slmopt::runtime
