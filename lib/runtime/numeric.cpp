#include "runtime/numeric.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include "core/half.hpp"

namespace slmopt::runtime {

Tensor widen_to_float(const Tensor& t) {
  if (t.dtype() != DType::F16 && t.dtype() != DType::BF16) return t;
  Tensor out(DType::F32, t.shape());
  const uint16_t* src = t.data<uint16_t>();
  float* dst = out.mutable_data<float>();
  const bool half = t.dtype() == DType::F16;
  for (int64_t i = 0; i < t.numel(); ++i) dst[i] = half ? half_to_float(src[i]) : bf16_to_float(src[i]);
  return out;
}

Tensor narrow_from_float(const Tensor& t, DType target) {
  if (target != DType::F16 && target != DType::BF16) return t;
  Tensor out(target, t.shape());
  const float* src = t.data<float>();
  uint16_t* dst = out.mutable_data<uint16_t>();
  const bool half = target == DType::F16;
  for (int64_t i = 0; i < t.numel(); ++i) dst[i] = half ? float_to_half(src[i]) : float_to_bf16(src[i]);
  return out;
}

namespace {

template <class Dst, class Src>
Dst convert(Src v) {
  if constexpr (std::is_same_v<Dst, bool>) {
    return v != Src(0);
  } else if constexpr (std::is_floating_point_v<Src> && std::is_integral_v<Dst>) {
    // Out-of-range float to int is undefined in C++; saturate NaN to 0 like ORT does.
    if (std::isnan(v)) return Dst(0);
    const double d = static_cast<double>(v);
    if (d <= static_cast<double>(std::numeric_limits<Dst>::lowest())) return std::numeric_limits<Dst>::lowest();
    if (d >= static_cast<double>(std::numeric_limits<Dst>::max())) return std::numeric_limits<Dst>::max();
    return static_cast<Dst>(v);
  } else {
    return static_cast<Dst>(v);
  }
}

// The shortest decimal that reads back as the same value, as numpy prints it.
template <class F>
std::string format_float(F v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "INF" : "-INF";
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, static_cast<double>(v));
    if (static_cast<F>(std::strtod(buf, nullptr)) == v) break;
  }
  return buf;
}

}  // namespace

Tensor cast_tensor(const Tensor& in, DType target) {
  if (in.dtype() == target) return in;
  if (target == DType::String) {
    std::vector<std::string> values;
    Tensor wide = widen_to_float(in);
    visit_numeric(wide.dtype(), [&](auto tag) {
      using S = typename decltype(tag)::type;
      const S* src = wide.data<S>();
      for (int64_t i = 0; i < wide.numel(); ++i) {
        if constexpr (std::is_floating_point_v<S>) values.push_back(format_float(src[i]));
        else if constexpr (std::is_same_v<S, bool>) values.push_back(src[i] ? "1" : "0");
        else values.push_back(std::to_string(src[i]));
      }
    });
    return Tensor::from_strings(in.shape(), std::move(values));
  }
  if (in.dtype() == DType::String) {
    Tensor f(DType::F64, in.shape());
    double* dst = f.mutable_data<double>();
    for (int64_t i = 0; i < in.numel(); ++i) {
      const std::string& s = in.strings()[static_cast<size_t>(i)];
      char* end = nullptr;
      dst[i] = std::strtod(s.c_str(), &end);
    }
    return cast_tensor(f, target);
  }
  Tensor src = widen_to_float(in);
  const bool narrow = target == DType::F16 || target == DType::BF16;
  Tensor out(narrow ? DType::F32 : target, in.shape());
  visit_numeric(src.dtype(), [&](auto stag) {
    using S = typename decltype(stag)::type;
    visit_numeric(out.dtype(), [&](auto dtag) {
      using D = typename decltype(dtag)::type;
      const S* s = src.data<S>();
      D* d = out.mutable_data<D>();
      for (int64_t i = 0; i < src.numel(); ++i) d[i] = convert<D>(s[i]);
    });
  });
  return narrow ? narrow_from_float(out, target) : out;
}

}  // namespace slmopt::runtime
