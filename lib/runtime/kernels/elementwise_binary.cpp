// Element-wise ops of two or more inputs with numpy broadcasting: arithmetic,
// comparisons, logic, variadic Max/Min/Sum/Mean, Where, PRelu and Clip.
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/kernels/kernel_util.hpp"

namespace slmopt::runtime {
namespace {

// out[i] = fn(a[i'], b[i'']) over the broadcast shape. Bool inputs are only
// passed to fn when allow_bool is set (comparisons and logic). Inputs must share a type
// (widened from 16-bit floats); the result is of type R (or the input type when R is void).
template <class R, class Fn>
Tensor broadcast_binary(OpContext& ctx, const Tensor& a_in, const Tensor& b_in, Fn fn, bool allow_bool = false) {
  if (a_in.dtype() != b_in.dtype())
    ctx.fail(std::string("inputs have different types: ") + dtype_name(a_in.dtype()) + " and " + dtype_name(b_in.dtype()));
  Tensor a = widen_to_float(a_in), b = widen_to_float(b_in);
  auto shape = broadcast_shape(ctx, a.shape(), b.shape());
  auto sa = broadcast_strides(a.shape(), shape), sb = broadcast_strides(b.shape(), shape);
  Tensor out;
  visit_numeric(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Out = std::conditional_t<std::is_void_v<R>, T, R>;
    if constexpr (std::is_same_v<T, bool> && !std::is_same_v<Out, bool>) {
      ctx.fail("does not accept bool tensors");
    } else {
      if (std::is_same_v<T, bool> && !allow_bool) ctx.fail("does not accept bool tensors");
      out = Tensor(dtype_of<Out>(), shape);
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      Out* po = out.mutable_data<Out>();
      if (a.shape() == b.shape()) {  // the common case: no broadcasting, a plain loop
        for (int64_t i = 0; i < out.numel(); ++i) po[i] = static_cast<Out>(fn(pa[i], pb[i]));
      } else if (b.numel() == 1) {
        for (int64_t i = 0; i < out.numel(); ++i) po[i] = static_cast<Out>(fn(pa[i], pb[0]));
      } else {
        const int64_t da = inner_step(sa), db = inner_step(sb), inner = shape.empty() ? 1 : shape.back();
        for_each_broadcast_row<2>(shape, {sa, sb}, [&](int64_t o, const std::array<int64_t, 2>& at) {
          const T* ra = pa + at[0];
          const T* rb = pb + at[1];
          for (int64_t j = 0; j < inner; ++j) po[o + j] = static_cast<Out>(fn(ra[j * da], rb[j * db]));
        });
      }
    }
  });
  if (std::is_void_v<R>) return narrow_from_float(out, a_in.dtype());
  return out;
}

template <class Fn>
void arith(OpContext& c, Fn fn) { c.output(0) = broadcast_binary<void>(c, c.input(0), c.input(1), fn); }
template <class Fn>
void compare(OpContext& c, Fn fn) { c.output(0) = broadcast_binary<bool>(c, c.input(0), c.input(1), fn, true); }

void add_op(OpContext& c) { arith(c, [](auto x, auto y) { return x + y; }); }
void sub_op(OpContext& c) { arith(c, [](auto x, auto y) { return x - y; }); }
void mul_op(OpContext& c) { arith(c, [](auto x, auto y) { return x * y; }); }
void div_op(OpContext& c) {
  arith(c, [](auto x, auto y) {
    using T = decltype(x);
    if constexpr (std::is_integral_v<T>) return y == 0 ? T(0) : static_cast<T>(x / y);
    else return x / y;
  });
}
void mod_op(OpContext& c) {
  const bool fmod = c.attr_int("fmod", 0) != 0;
  arith(c, [fmod](auto x, auto y) {
    using T = decltype(x);
    if constexpr (std::is_floating_point_v<T>) {
      return fmod ? std::fmod(x, y) : x - y * std::floor(x / y);
    } else {
      if (y == 0) return T(0);
      T r = static_cast<T>(x % y);
      if constexpr (std::is_signed_v<T>)
        if (!fmod && r != 0 && ((r < 0) != (y < 0))) r = static_cast<T>(r + y);
      return r;
    }
  });
}

void pow_op(OpContext& c) {
  // The exponent may have another type than the base; the result has the base's.
  Tensor exponent = cast_tensor(c.input(1), widen_to_float(c.input(0)).dtype());
  if (c.input(0).dtype() == DType::F16 || c.input(0).dtype() == DType::BF16) exponent = cast_tensor(c.input(1), c.input(0).dtype());
  // x^2 (squared magnitudes in spectrograms) as one multiply: for floats it is
  // exactly std::pow's result (the square is exact in double, rounded once) at
  // a tenth of the cost.
  if (exponent.numel() == 1 && is_float(exponent.dtype()) && doubles_of(exponent)[0] == 2.0) {
    c.output(0) = broadcast_binary<void>(c, c.input(0), exponent, [](auto x, auto) { return x * x; });
    return;
  }
  c.output(0) = broadcast_binary<void>(c, c.input(0), exponent, [](auto x, auto y) {
    using T = decltype(x);
    return static_cast<T>(std::pow(static_cast<double>(x), static_cast<double>(y)));
  });
}

void equal_op(OpContext& c) {
  if (c.input(0).dtype() == DType::String) {
    const Tensor& a = c.input(0);
    const Tensor& b = c.input(1);
    auto shape = broadcast_shape(c, a.shape(), b.shape());
    Tensor out(DType::Bool, shape);
    auto sa = broadcast_strides(a.shape(), shape), sb = broadcast_strides(b.shape(), shape);
    for_each_broadcast2(shape, sa, sb, [&](int64_t i, int64_t ia, int64_t ib) {
      out.mutable_data<bool>()[i] = a.strings()[static_cast<size_t>(ia)] == b.strings()[static_cast<size_t>(ib)];
    });
    c.output(0) = std::move(out);
    return;
  }
  compare(c, [](auto x, auto y) { return x == y; });
}
void less_op(OpContext& c) { compare(c, [](auto x, auto y) { return x < y; }); }
void greater_op(OpContext& c) { compare(c, [](auto x, auto y) { return x > y; }); }
void less_equal_op(OpContext& c) { compare(c, [](auto x, auto y) { return x <= y; }); }
void greater_equal_op(OpContext& c) { compare(c, [](auto x, auto y) { return x >= y; }); }

template <class Fn>
void logic(OpContext& c, Fn fn) {
  if (c.input(0).dtype() != DType::Bool) c.fail("takes bool tensors");
  compare(c, fn);
}
void and_op(OpContext& c) { logic(c, [](auto x, auto y) { return x && y; }); }
void or_op(OpContext& c) { logic(c, [](auto x, auto y) { return x || y; }); }
void xor_op(OpContext& c) { logic(c, [](auto x, auto y) { return x != y; }); }

// fn is only instantiated for integer types; floats are refused up front.
template <class Fn>
void bitwise(OpContext& c, Fn fn) {
  if (is_float(c.input(0).dtype()) || c.input(0).dtype() == DType::Bool) c.fail("takes integer tensors");
  arith(c, [fn](auto x, auto y) {
    if constexpr (std::is_integral_v<decltype(x)>) return static_cast<decltype(x)>(fn(x, y));
    else return x;
  });
}
void bitwise_and_op(OpContext& c) { bitwise(c, [](auto x, auto y) { return x & y; }); }
void bitwise_or_op(OpContext& c) { bitwise(c, [](auto x, auto y) { return x | y; }); }
void bitwise_xor_op(OpContext& c) { bitwise(c, [](auto x, auto y) { return x ^ y; }); }
void bit_shift_op(OpContext& c) {
  const bool left = c.attr_string("direction", "") == "LEFT";
  bitwise(c, [left](auto x, auto y) {
    using T = decltype(x);
    if (static_cast<uint64_t>(y) >= sizeof(T) * 8) return T(0);
    return left ? static_cast<T>(x << y) : static_cast<T>(x >> y);
  });
}

// Max, Min, Sum, Mean: fold the inputs left to right with broadcasting.
template <class Fn>
void variadic(OpContext& c, Fn fn, bool mean = false) {
  if (c.input_count() == 0) c.fail("needs at least one input");
  Tensor acc = c.input(0);
  for (size_t i = 1; i < c.input_count(); ++i) acc = broadcast_binary<void>(c, acc, c.input(i), fn);
  if (c.input_count() == 1) acc = broadcast_binary<void>(c, acc, acc, [](auto x, auto) { return x; });
  if (mean) {
    const double n = static_cast<double>(c.input_count());
    Tensor w = widen_to_float(acc);
    visit_float(w.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* p = w.mutable_data<T>();
      for (int64_t i = 0; i < w.numel(); ++i) p[i] = static_cast<T>(p[i] / n);
    });
    acc = narrow_from_float(w, acc.dtype());
  }
  c.output(0) = std::move(acc);
}
// NaN wins, as ONNX's Max/Min. Branch-free with quiet comparisons so the loop
// vectorizes (an ordered `x > y` may not be speculated past the NaN test).
template <class T, class Better>
T nan_or_pick(T x, T y, Better better) {
  if constexpr (std::is_floating_point_v<T>) {
    const T picked = better(x, y) ? x : y;
    return (x != x || y != y) ? std::numeric_limits<T>::quiet_NaN() : picked;
  } else {
    return better(x, y) ? x : y;
  }
}
void max_op(OpContext& c) {
  variadic(c, [](auto x, auto y) {
    return nan_or_pick(x, y, [](auto a, auto b) {
      if constexpr (std::is_floating_point_v<decltype(a)>) return std::isgreater(a, b);
      else return a > b;
    });
  });
}
void min_op(OpContext& c) {
  variadic(c, [](auto x, auto y) {
    return nan_or_pick(x, y, [](auto a, auto b) {
      if constexpr (std::is_floating_point_v<decltype(a)>) return std::isless(a, b);
      else return a < b;
    });
  });
}
void sum_op(OpContext& c) { variadic(c, [](auto x, auto y) { return x + y; }); }
void mean_op(OpContext& c) { variadic(c, [](auto x, auto y) { return x + y; }, true); }

// out = cond ? x : y, typed by element size only (Where moves values, it
// never computes with them).
template <class E>
void where_rows(const Tensor& cond, const Tensor& x, const Tensor& y, Tensor& out) {
  const auto& shape = out.shape();
  const auto sc = broadcast_strides(cond.shape(), shape), sx = broadcast_strides(x.shape(), shape),
             sy = broadcast_strides(y.shape(), shape);
  const int64_t dc = inner_step(sc), dx = inner_step(sx), dy = inner_step(sy), inner = shape.empty() ? 1 : shape.back();
  const bool* pc = cond.data<bool>();
  const auto* px = reinterpret_cast<const E*>(x.bytes());
  const auto* py = reinterpret_cast<const E*>(y.bytes());
  auto* po = reinterpret_cast<E*>(out.mutable_bytes());
  for_each_broadcast_row<3>(shape, {sc, sx, sy}, [&](int64_t o, const std::array<int64_t, 3>& at) {
    for (int64_t j = 0; j < inner; ++j) po[o + j] = pc[at[0] + j * dc] ? px[at[1] + j * dx] : py[at[2] + j * dy];
  });
}

void where_op(OpContext& c) {
  const Tensor& cond = c.input(0);
  const Tensor& x = c.input(1);
  const Tensor& y = c.input(2);
  if (cond.dtype() != DType::Bool) c.fail("condition must be bool");
  if (x.dtype() != y.dtype()) c.fail("X and Y have different types");
  auto shape = broadcast_shape(c, broadcast_shape(c, cond.shape(), x.shape()), y.shape());
  if (x.dtype() == DType::String) {
    Tensor bc = broadcast_to(c, cond, shape), bx = broadcast_to(c, x, shape), by = broadcast_to(c, y, shape);
    std::vector<std::string> v;
    for (int64_t i = 0; i < bc.numel(); ++i)
      v.push_back(bc.data<bool>()[i] ? bx.strings()[static_cast<size_t>(i)] : by.strings()[static_cast<size_t>(i)]);
    c.output(0) = Tensor::from_strings(shape, std::move(v));
    return;
  }
  Tensor out(x.dtype(), shape);
  switch (dtype_size(x.dtype())) {
    case 1: where_rows<uint8_t>(cond, x, y, out); break;
    case 2: where_rows<uint16_t>(cond, x, y, out); break;
    case 4: where_rows<uint32_t>(cond, x, y, out); break;
    case 8: where_rows<uint64_t>(cond, x, y, out); break;
    default: c.fail(std::string("cannot select ") + dtype_name(x.dtype()));
  }
  c.output(0) = std::move(out);
}

void prelu_op(OpContext& c) {
  arith(c, [](auto x, auto slope) {
    if constexpr (std::is_signed_v<decltype(x)>) return x < 0 ? static_cast<decltype(x)>(x * slope) : x;
    else return x;
  });
}

void clip_op(OpContext& c) {
  Tensor x = widen_to_float(c.input(0));
  double lo = -INFINITY, hi = INFINITY;
  if (c.opset < 11) {
    lo = c.attr_float("min", -std::numeric_limits<float>::max());
    hi = c.attr_float("max", std::numeric_limits<float>::max());
  } else {
    if (c.has_input(1)) lo = scalar_value(widen_to_float(c.input(1)));
    if (c.has_input(2)) hi = scalar_value(widen_to_float(c.input(2)));
  }
  Tensor out(x.dtype(), x.shape());
  visit_arithmetic(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* s = x.data<T>();
    T* d = out.mutable_data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double v = static_cast<double>(s[i]);
      d[i] = static_cast<T>(std::min(std::max(v, lo), hi));
    }
  });
  c.output(0) = narrow_from_float(out, c.input(0).dtype());
}

}  // namespace

void register_elementwise_binary(KernelRegistry& r) {
  const std::pair<const char*, KernelFn> ops[] = {
      {"Add", add_op},   {"Sub", sub_op},     {"Mul", mul_op},         {"Div", div_op},
      {"Mod", mod_op},   {"Pow", pow_op},     {"Equal", equal_op},     {"Less", less_op},
      {"Greater", greater_op}, {"LessOrEqual", less_equal_op}, {"GreaterOrEqual", greater_equal_op},
      {"And", and_op},   {"Or", or_op},       {"Xor", xor_op},         {"BitwiseAnd", bitwise_and_op},
      {"BitwiseOr", bitwise_or_op}, {"BitwiseXor", bitwise_xor_op}, {"BitShift", bit_shift_op},
      {"Max", max_op},   {"Min", min_op},     {"Sum", sum_op},         {"Mean", mean_op},
      {"Where", where_op}, {"PRelu", prelu_op}, {"Clip", clip_op},
  };
  for (const auto& [name, fn] : ops) r.add("", name, fn);
}

}  // namespace slmopt::runtime
