// A quantized weight as a first-class tensor: packed codes plus the scales,
// minimums or lookup table its scheme needs. The IR only stores it; the
// schemes in lib/quant give the bytes their meaning (quantize, dequantize).
//
// Every quantized tensor is viewed as a matrix of `rows` output channels, each
// a contiguous run of `cols` weights along the input dimension; groups run
// along a row. `transposed` says the logical tensor is [cols, rows] (a MatMul
// weight [K, N]); otherwise the logical shape flattens to [rows, cols].
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/buffer.hpp"
#include "core/tensor.hpp"

namespace slmopt {

// A part's bytes: owned (what quantization produces) or a read-only view of a
// mapped file (a blob loaded in place, so its weights are never copied).
class PartBytes {
 public:
  PartBytes() = default;
  PartBytes(std::vector<uint8_t> owned) : owned_(std::move(owned)) {}  // NOLINT: implicit on purpose
  static PartBytes view(std::shared_ptr<const Buffer> mapped) {
    PartBytes b;
    b.view_ = std::move(mapped);
    return b;
  }
  const uint8_t* data() const { return view_ ? view_->data() : owned_.data(); }
  size_t size() const { return view_ ? view_->size() : owned_.size(); }
  bool is_view() const { return view_ != nullptr; }
  bool operator==(const PartBytes& o) const {
    return size() == o.size() && (size() == 0 || std::memcmp(data(), o.data(), size()) == 0);
  }

 private:
  std::vector<uint8_t> owned_;
  std::shared_ptr<const Buffer> view_;
};

struct QuantParams {
  int bits = 8;                   // code width, 1..8
  int64_t group = 32;             // weights per scale along a row; 0 = the whole row
  bool symmetric = true;          // false: a minimum per group as well
  DType scale_dtype = DType::F16;  // F16 or F32
  int sub_scale_bits = 0;         // > 0: group scales quantized in super-blocks
  int64_t super_block = 256;      // weights per super-block (a multiple of group)
  bool operator==(const QuantParams&) const = default;
};

// One stored array: `count` elements of `bits` bits each, packed LSB first.
struct QuantPart {
  std::string name;  // "codes", "scales", "mins", "table", ...
  int bits = 8;
  int64_t count = 0;
  PartBytes bytes;  // exactly ceil(count * bits / 8) bytes
  bool operator==(const QuantPart&) const = default;
};

struct QuantTensor {
  std::string scheme;  // key in lib/quant's scheme registry
  QuantParams params;
  std::vector<int64_t> shape;  // logical shape
  bool transposed = false;
  int64_t rows = 0, cols = 0;
  std::vector<QuantPart> parts;

  const QuantPart* part(const std::string& part_name) const;
  // Every stored bit, codes and scales alike.
  int64_t storage_bits() const;
  double bits_per_weight() const;
  bool operator==(const QuantTensor&) const = default;
};

}  // namespace slmopt
