#include "npy.hpp"

#include <cctype>
#include <cstring>
#include <optional>
#include <string_view>

#include "core/atomic_file.hpp"
#include "core/checked.hpp"

namespace slmopt::calib {
namespace {

struct NpyType {
  const char* descr;
  DType dtype;
};
// '|' marks single-byte types; multi-byte types must be little-endian ('<').
constexpr NpyType kTypes[] = {
    {"<f4", DType::F32}, {"<f8", DType::F64}, {"<f2", DType::F16}, {"|i1", DType::I8},
    {"|u1", DType::U8},  {"<i2", DType::I16}, {"<u2", DType::U16}, {"<i4", DType::I32},
    {"<u4", DType::U32}, {"<i8", DType::I64}, {"<u8", DType::U64}, {"|b1", DType::Bool},
};

// The value of 'key' in the header, a Python dict literal: a quoted string
// (quotes kept), a parenthesized tuple, or a bare word. Scanned by hand:
// std::regex recurses per character and is slow on hostile headers.
std::string field(std::string_view header, const std::string& key) {
  for (const char quote : {'\'', '"'}) {
    const size_t at = header.find(quote + key + quote);
    if (at == std::string_view::npos) continue;
    size_t i = at + key.size() + 2;
    auto skip_spaces = [&] {
      while (i < header.size() && std::isspace(static_cast<unsigned char>(header[i]))) ++i;
    };
    skip_spaces();
    if (i >= header.size() || header[i] != ':') break;
    ++i;
    skip_spaces();
    if (i >= header.size()) break;
    size_t end = i;
    if (header[i] == '\'' || header[i] == '"') end = header.find(header[i], i + 1);
    else if (header[i] == '(') end = header.find(')', i);
    else
      while (end + 1 < header.size() && std::isalpha(static_cast<unsigned char>(header[end + 1]))) ++end;
    if (end == std::string_view::npos) break;
    return std::string(header.substr(i, end + 1 - i));
  }
  throw_bad_input("npy header has no valid '" + key + "'");
}

}  // namespace

Tensor parse_npy(const uint8_t* data, size_t size, const std::string& name) {
  try {
    if (size < 10 || std::memcmp(data, "\x93NUMPY", 6) != 0) throw_bad_input("not a .npy file (bad magic)");
    const int major = data[6];
    size_t header_len = 0, offset = 0;
    if (major == 1) {
      header_len = data[8] | (static_cast<size_t>(data[9]) << 8);
      offset = 10;
    } else if (major == 2 || major == 3) {
      if (size < 12) throw_bad_input("truncated .npy header");
      header_len = data[8] | (static_cast<size_t>(data[9]) << 8) | (static_cast<size_t>(data[10]) << 16) |
                   (static_cast<size_t>(data[11]) << 24);
      offset = 12;
    } else {
      throw_bad_input("unsupported .npy version " + std::to_string(major));
    }
    if (header_len > size - offset) throw_bad_input("npy header runs past the end of the file");
    const std::string_view header(reinterpret_cast<const char*>(data + offset), header_len);
    const std::string descr = field(header, "descr");
    const std::string fortran = field(header, "fortran_order");
    const std::string shape_text = field(header, "shape");
    if (descr.size() < 2 || (descr[0] != '\'' && descr[0] != '"')) throw_bad_input("npy header has no valid 'descr'");
    if (fortran != "True" && fortran != "False") throw_bad_input("npy header has no valid 'fortran_order'");
    if (shape_text.front() != '(' || shape_text.find_first_not_of("0123456789, \t\n", 1) != shape_text.size() - 1)
      throw_bad_input("npy header has no valid 'shape'");
    if (fortran == "True") throw_bad_input("Fortran-ordered arrays are not supported");
    std::optional<DType> dtype;
    const std::string d = descr.substr(1, descr.size() - 2);
    for (const auto& t : kTypes)
      if (d == t.descr || (d.size() == 3 && d[0] == '=' && d.substr(1) == std::string(t.descr).substr(1)))
        dtype = t.dtype;
    if (!dtype) throw_bad_input("unsupported npy dtype '" + d + "' (little-endian numeric types only)");
    std::vector<int64_t> shape;
    for (size_t i = 1; i < shape_text.size();) {
      const size_t end = shape_text.find_first_not_of("0123456789", i);
      if (end > i) {
        if (end - i > 18) throw_bad_input("npy dimension is too large");
        shape.push_back(std::stoll(shape_text.substr(i, end - i)));
      }
      i = end + 1;
    }
    const int64_t bytes = checked_mul(checked_numel(shape), dtype_size(*dtype), "npy data size");
    const size_t data_offset = offset + header_len;
    if (static_cast<uint64_t>(bytes) != size - data_offset)
      throw_bad_input("npy data holds " + std::to_string(size - data_offset) + " bytes, shape " + shape_to_string(shape) +
                      " of " + dtype_name(*dtype) + " needs " + std::to_string(bytes));
    Tensor t(*dtype, shape);
    if (bytes) std::memcpy(t.mutable_bytes(), data + data_offset, static_cast<size_t>(bytes));
    return t;
  } catch (Error& e) {
    e.set_file_if_empty(name);
    throw;
  }
}

Tensor read_npy(const std::string& path) {
  auto file = MappedFile::open(path);
  return parse_npy(file->data(), file->size(), path);
}

void write_npy(const std::string& path, const Tensor& t) {
  const char* descr = nullptr;
  for (const auto& k : kTypes)
    if (k.dtype == t.dtype()) descr = k.descr;
  if (!descr) throw_bad_input(std::string("cannot write ") + dtype_name(t.dtype()) + " tensors as .npy", path);
  std::string shape = "(";
  for (size_t i = 0; i < t.shape().size(); ++i) shape += std::to_string(t.shape()[i]) + (t.shape().size() == 1 || i + 1 < t.shape().size() ? "," : "");
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string prefix = "\x93NUMPY";
  prefix += '\x01';
  prefix += '\x00';
  prefix += static_cast<char>(header.size() & 0xFF);
  prefix += static_cast<char>(header.size() >> 8);
  AtomicFile out(path);
  out.write(prefix);
  out.write(header);
  if (t.nbytes()) out.write(t.bytes(), t.nbytes());
  out.commit();
}

}  // namespace slmopt::calib
