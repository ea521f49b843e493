#include "core/dtype.hpp"

#include <array>

namespace slmopt {
namespace {

// ONNX codes from onnx.proto's TensorProto.DataType; F8 codes are ONNX >= 1.14's,
// 4-bit ones ONNX >= 1.16's.
constexpr std::array<DTypeTraits, static_cast<size_t>(DType::Count_)> kTable{{
    {DType::F32, "f32", 4, 1, "F32", true},
    {DType::F16, "f16", 2, 10, "F16", true},
    {DType::BF16, "bf16", 2, 16, "BF16", true},
    {DType::F64, "f64", 8, 11, "F64", true},
    {DType::I8, "i8", 1, 3, "I8", false},
    {DType::U8, "u8", 1, 2, "U8", false},
    {DType::I16, "i16", 2, 5, "I16", false},
    {DType::U16, "u16", 2, 4, "U16", false},
    {DType::I32, "i32", 4, 6, "I32", false},
    {DType::U32, "u32", 4, 12, "U32", false},
    {DType::I64, "i64", 8, 7, "I64", false},
    {DType::U64, "u64", 8, 13, "U64", false},
    {DType::Bool, "bool", 1, 9, "BOOL", false},
    {DType::String, "string", 0, 8, nullptr, false},
    {DType::F8E4M3FN, "f8e4m3fn", 1, 17, "F8_E4M3", true},
    {DType::F8E5M2, "f8e5m2", 1, 19, "F8_E5M2", true},
    {DType::I4, "i4", 1, 22, nullptr, false},
    {DType::U4, "u4", 1, 21, nullptr, false},
}};

constexpr bool table_in_enum_order() {
  for (size_t i = 0; i < kTable.size(); ++i)
    if (static_cast<size_t>(kTable[i].dtype) != i) return false;
  return true;
}
static_assert(table_in_enum_order(), "dtype table rows must follow the DType enum order");

}  // namespace

const DTypeTraits& traits(DType t) { return kTable.at(static_cast<size_t>(t)); }

std::optional<DType> dtype_from_onnx(int onnx_code) {
  for (const auto& row : kTable)
    if (row.onnx_code == onnx_code) return row.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  for (const auto& row : kTable)
    if (row.safetensors_name && name == row.safetensors_name) return row.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& row : kTable)
    if (name == row.name) return row.dtype;
  return std::nullopt;
}

}  // namespace slmopt
