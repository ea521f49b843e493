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
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace slmopt {

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
  std::vector<uint8_t> bytes;  // exactly ceil(count * bits / 8) bytes
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
