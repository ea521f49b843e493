// Element types of the IR. One traits table (dtype.cpp) gives each type its name,
// size, ONNX TensorProto code and safetensors name; its length is pinned by a
// static_assert, so adding a type without a table row fails the build.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace slmopt {

enum class DType : uint8_t {
  F32,
  F16,
  BF16,
  F64,
  I8,
  U8,
  I16,
  U16,
  I32,
  U32,
  I64,
  U64,
  Bool,
  String,
  F8E4M3FN,
  F8E5M2,
  // 4-bit integers: one value a byte in memory (i4 sign-extended), packed two
  // a byte, low nibble first, in ONNX files (onnx/onnx_tensor.cpp).
  I4,
  U4,
  Count_,  // number of types; not a type
};

struct DTypeTraits {
  DType dtype;
  const char* name;              // our name, e.g. "f32"
  int element_size;              // bytes per element; 0 for String
  int onnx_code;                 // onnx::TensorProto_DataType value
  const char* safetensors_name;  // nullptr when safetensors has no such type
  bool is_float;
};

const DTypeTraits& traits(DType t);
inline const char* dtype_name(DType t) { return traits(t).name; }
inline int dtype_size(DType t) { return traits(t).element_size; }
inline bool is_float(DType t) { return traits(t).is_float; }

std::optional<DType> dtype_from_onnx(int onnx_code);
std::optional<DType> dtype_from_safetensors(std::string_view name);
std::optional<DType> dtype_from_name(std::string_view name);

}  // namespace slmopt
