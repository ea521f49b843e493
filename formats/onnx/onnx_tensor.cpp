#include "onnx/onnx_tensor.hpp"

#include <bit>
#include <cstring>
#include <filesystem>

#include "core/checked.hpp"
#include "core/file_guard.hpp"
#include "onnx/onnx_io.hpp"

namespace slmopt::onnx_format {

static_assert(std::endian::native == std::endian::little,
              "ONNX raw_data is little-endian; big-endian hosts need byte swapping");


std::shared_ptr<const MappedFile> ExternalDataResolver::open(const std::string& location) {
  if (auto it = files_.find(location); it != files_.end()) return it->second;
  auto file = MappedFile::open(path_inside(base_dir_, location, "external data"));
  files_.emplace(location, file);
  return file;
}

namespace {

template <class Src, class Dst>
void copy_converted(const google::protobuf::RepeatedField<Src>& src, Tensor& t) {
  Dst* out = t.mutable_data<Dst>();
  for (int i = 0; i < src.size(); ++i) out[i] = static_cast<Dst>(src.Get(i));
}

void check_count(int64_t count, int64_t numel, const char* field) {
  if (count != numel)
    throw_bad_input(std::string(field) + " holds " + std::to_string(count) + " values, shape needs " +
                    std::to_string(numel));
}

int64_t nibble_bytes(int64_t numel) { return numel / 2 + numel % 2; }

Tensor unpack_nibbles(DType dtype, std::vector<int64_t> shape, const uint8_t* packed) {
  Tensor t(dtype, std::move(shape));
  uint8_t* out = t.mutable_data<uint8_t>();
  const bool is_signed = dtype == DType::I4;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const auto nibble = static_cast<uint8_t>((packed[i / 2] >> (4 * (i % 2))) & 0xF);
    out[i] = is_signed && nibble >= 8 ? static_cast<uint8_t>(nibble | 0xF0) : nibble;
  }
  return t;
}

}  // namespace

// 4-bit types travel two values a byte, low nibble first; in memory each
// value has a byte of its own, an i4 sign-extended.
bool is_nibble_type(DType t) { return t == DType::I4 || t == DType::U4; }

std::string pack_nibbles(const Tensor& t) {
  const bool is_signed = t.dtype() == DType::I4;
  std::string packed(static_cast<size_t>(nibble_bytes(t.numel())), '\0');
  const uint8_t* v = t.data<uint8_t>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int value = is_signed ? static_cast<int8_t>(v[i]) : v[i];
    if (value < (is_signed ? -8 : 0) || value > (is_signed ? 7 : 15))
      throw_internal(std::string("a ") + dtype_name(t.dtype()) + " tensor holds " + std::to_string(value));
    packed[static_cast<size_t>(i / 2)] |= static_cast<char>((v[i] & 0xF) << (4 * (i % 2)));
  }
  return packed;
}

namespace {

// The count a typed field must hold is checked before anything is allocated,
// so a hostile shape cannot make us allocate terabytes.
struct TypedField {
  int64_t count;
  const char* name;
};

TypedField typed_field(const onnx::TensorProto& p, DType dtype) {
  switch (dtype) {
    case DType::F32: return {p.float_data_size(), "float_data"};
    case DType::F64: return {p.double_data_size(), "double_data"};
    case DType::I64: return {p.int64_data_size(), "int64_data"};
    case DType::U32:
    case DType::U64: return {p.uint64_data_size(), "uint64_data"};
    case DType::String: return {p.string_data_size(), "string_data"};
    default: return {p.int32_data_size(), "int32_data"};
  }
}

Tensor decode_typed_fields(const onnx::TensorProto& p, DType dtype, std::vector<int64_t> shape) {
  const int64_t n = checked_numel(shape);
  TypedField field = typed_field(p, dtype);
  if (is_nibble_type(dtype)) {
    // One packed byte (two values) per int32.
    check_count(field.count, nibble_bytes(n), field.name);
    std::vector<uint8_t> bytes(p.int32_data().begin(), p.int32_data().end());
    return unpack_nibbles(dtype, std::move(shape), bytes.data());
  }
  check_count(field.count, n, field.name);
  Tensor t(dtype, shape);
  switch (dtype) {
    case DType::F32:
      copy_converted<float, float>(p.float_data(), t);
      break;
    case DType::F64:
      copy_converted<double, double>(p.double_data(), t);
      break;
    case DType::I64:
      copy_converted<int64_t, int64_t>(p.int64_data(), t);
      break;
    case DType::U32:
      copy_converted<uint64_t, uint32_t>(p.uint64_data(), t);
      break;
    case DType::U64:
      copy_converted<uint64_t, uint64_t>(p.uint64_data(), t);
      break;
    case DType::I32:
      copy_converted<int32_t, int32_t>(p.int32_data(), t);
      break;
    // Narrow types travel in int32_data, one value (or 16-bit pattern) per entry.
    case DType::I16:
      copy_converted<int32_t, int16_t>(p.int32_data(), t);
      break;
    case DType::U16:
    case DType::F16:
    case DType::BF16:
      copy_converted<int32_t, uint16_t>(p.int32_data(), t);
      break;
    case DType::I8:
      copy_converted<int32_t, int8_t>(p.int32_data(), t);
      break;
    case DType::U8:
    case DType::Bool:
    case DType::F8E4M3FN:
    case DType::F8E5M2:
      copy_converted<int32_t, uint8_t>(p.int32_data(), t);
      break;
    case DType::String:
    case DType::I4:
    case DType::U4:
    case DType::Count_:
      throw_internal("decode_typed_fields: unexpected type");
  }
  return t;
}

bool has_typed_fields(const onnx::TensorProto& p) {
  return p.float_data_size() || p.int32_data_size() || p.int64_data_size() ||
         p.double_data_size() || p.uint64_data_size() || p.string_data_size();
}

Tensor decode_external(const onnx::TensorProto& p, DType dtype, std::vector<int64_t> shape,
                       ExternalDataResolver& resolver) {
  std::string location;
  uint64_t offset = 0;
  std::optional<uint64_t> length;
  for (const auto& kv : p.external_data()) {
    auto parse_u64 = [&](const std::string& v) {
      if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos)
        throw_bad_input("external data " + kv.key() + " '" + v + "' is not a non-negative integer");
      return std::stoull(v);
    };
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset") offset = parse_u64(kv.value());
    else if (kv.key() == "length") length = parse_u64(kv.value());
  }
  if (dtype == DType::String) throw_bad_input("string tensors cannot use external data");
  auto file = resolver.open(location);
  const int64_t numel = checked_numel(shape);
  const int64_t expected = is_nibble_type(dtype) ? nibble_bytes(numel) : checked_mul(numel, dtype_size(dtype), "tensor byte size");
  uint64_t len = length ? *length : (offset <= file->size() ? file->size() - offset : 0);
  if (!range_within(offset, len, file->size()))
    throw_bad_input("external data range [" + std::to_string(offset) + ", +" + std::to_string(len) +
                    ") runs past the end of '" + location + "' (" + std::to_string(file->size()) +
                    " bytes)");
  if (len != static_cast<uint64_t>(expected))
    throw_bad_input("external data length " + std::to_string(len) + " does not match shape " +
                    shape_to_string(shape) + " of " + dtype_name(dtype) + " (" +
                    std::to_string(expected) + " bytes)");
  if (is_nibble_type(dtype)) return unpack_nibbles(dtype, std::move(shape), file->data() + offset);
  return Tensor::from_buffer(dtype, std::move(shape), Buffer::view(file, offset, len));
}

}  // namespace

Tensor decode_tensor(const onnx::TensorProto& p, ExternalDataResolver& resolver) {
  return with_context("tensor '" + p.name() + "'", [&] {
    auto dtype = dtype_from_onnx(p.data_type());
    if (!dtype) throw_bad_input("unsupported data type " + std::to_string(p.data_type()));
    if (p.has_segment()) throw_bad_input("segmented tensors are not supported");
    std::vector<int64_t> shape(p.dims().begin(), p.dims().end());
    const int64_t numel = checked_numel(shape);
    if (p.data_location() == onnx::TensorProto::EXTERNAL)
      return decode_external(p, *dtype, std::move(shape), resolver);
    if (*dtype == DType::String) {
      check_count(p.string_data_size(), numel, "string_data");
      return Tensor::from_strings(std::move(shape),
                                  std::vector<std::string>(p.string_data().begin(),
                                                           p.string_data().end()));
    }
    if (p.has_raw_data()) {
      if (has_typed_fields(p)) throw_bad_input("has both raw_data and typed data fields");
      const int64_t expected =
          is_nibble_type(*dtype) ? nibble_bytes(numel) : checked_mul(numel, dtype_size(*dtype), "tensor byte size");
      if (p.raw_data().size() != static_cast<uint64_t>(expected))
        throw_bad_input("raw_data holds " + std::to_string(p.raw_data().size()) + " bytes, shape " +
                        shape_to_string(shape) + " of " + dtype_name(*dtype) + " needs " +
                        std::to_string(expected));
      if (is_nibble_type(*dtype))
        return unpack_nibbles(*dtype, std::move(shape), reinterpret_cast<const uint8_t*>(p.raw_data().data()));
      Tensor t(*dtype, std::move(shape));
      if (expected) std::memcpy(t.mutable_bytes(), p.raw_data().data(), p.raw_data().size());
      return t;
    }
    return decode_typed_fields(p, *dtype, std::move(shape));
  });
}

void encode_tensor_inline(const Tensor& t, onnx::TensorProto& p) {
  if (t.is_quantized()) throw_internal("a quantized tensor reached the ONNX writer: export it with to_qdq first");
  p.set_data_type(traits(t.dtype()).onnx_code);
  p.clear_dims();
  for (int64_t d : t.shape()) p.add_dims(d);
  if (t.dtype() == DType::String) {
    for (const auto& s : t.strings()) p.add_string_data(s);
  } else if (is_nibble_type(t.dtype())) {
    p.set_raw_data(pack_nibbles(t));
  } else {
    p.set_raw_data(t.nbytes() ? std::string(reinterpret_cast<const char*>(t.bytes()), t.nbytes())
                              : std::string());
  }
}

Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& base_dir) {
  ExternalDataResolver resolver(base_dir);
  return decode_tensor(proto, resolver);
}

}  // namespace slmopt::onnx_format
