// Type dispatch for kernels: visit_numeric(dtype, fn) calls fn(Tag<T>{}) with
// the C++ type that stores `dtype`. 16-bit floats are not visited: kernels
// that accept them widen to float (see widen_to_float).
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace slmopt::runtime {

template <class T>
struct Tag {
  using type = T;
};

template <class T>
double to_double(T v) {
  return static_cast<double>(v);
}

template <class Fn>
void visit_numeric(DType t, Fn&& fn) {
  switch (t) {
    case DType::F32: return fn(Tag<float>{});
    case DType::F64: return fn(Tag<double>{});
    case DType::I8:
    case DType::I4: return fn(Tag<int8_t>{});
    case DType::U8:
    case DType::U4: return fn(Tag<uint8_t>{});
    case DType::I16: return fn(Tag<int16_t>{});
    case DType::U16: return fn(Tag<uint16_t>{});
    case DType::I32: return fn(Tag<int32_t>{});
    case DType::U32: return fn(Tag<uint32_t>{});
    case DType::I64: return fn(Tag<int64_t>{});
    case DType::U64: return fn(Tag<uint64_t>{});
    case DType::Bool: return fn(Tag<bool>{});
    default: throw_bad_input(std::string("unsupported element type ") + dtype_name(t));
  }
}

// Like visit_numeric without bool, on which arithmetic is refused.
template <class Fn>
void visit_arithmetic(DType t, Fn&& fn) {
  if (t == DType::Bool) throw_bad_input("bool tensors are not accepted");
  visit_numeric(t, [&](auto tag) {
    if constexpr (!std::is_same_v<typename decltype(tag)::type, bool>) fn(tag);
  });
}

// Same, limited to float types (f32, f64).
template <class Fn>
void visit_float(DType t, Fn&& fn) {
  switch (t) {
    case DType::F32: return fn(Tag<float>{});
    case DType::F64: return fn(Tag<double>{});
    default: throw_bad_input(std::string("expected a float tensor, got ") + dtype_name(t));
  }
}

template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::F32;
  else if constexpr (std::is_same_v<T, double>) return DType::F64;
  else if constexpr (std::is_same_v<T, int8_t>) return DType::I8;
  else if constexpr (std::is_same_v<T, uint8_t>) return DType::U8;
  else if constexpr (std::is_same_v<T, int16_t>) return DType::I16;
  else if constexpr (std::is_same_v<T, uint16_t>) return DType::U16;
  else if constexpr (std::is_same_v<T, int32_t>) return DType::I32;
  else if constexpr (std::is_same_v<T, uint32_t>) return DType::U32;
  else if constexpr (std::is_same_v<T, int64_t>) return DType::I64;
  else if constexpr (std::is_same_v<T, uint64_t>) return DType::U64;
  else if constexpr (std::is_same_v<T, bool>) return DType::Bool;
  else static_assert(sizeof(T) == 0, "no dtype for this type");
}

// f16/bf16 tensors become f32 copies; others are returned as they are.
Tensor widen_to_float(const Tensor& t);
// Converts an f32 tensor back to `target` (f16, bf16 or f32).
Tensor narrow_from_float(const Tensor& t, DType target);
// Element-wise conversion between any two non-string types (ONNX Cast rules).
Tensor cast_tensor(const Tensor& t, DType target);

}  // namespace slmopt::runtime
