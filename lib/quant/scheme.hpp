// Quantization schemes: one table (scheme_registry.cpp), one file per family.
// A scheme turns a rows x cols float matrix into the parts of a QuantTensor
// and back. Its layout() names every part it stores, so bits per weight are
// known before quantizing and a file's parts are validated before any read.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/quant_tensor.hpp"

namespace slmopt::quant {

struct QuantizeOptions {
  // Per-input-channel importance (cols values, e.g. mean x^2 from calibration);
  // null weights every column equally.
  const float* importance = nullptr;
  // Search scales (and minimums) that minimise the weighted squared error
  // instead of taking them from the range (round-to-nearest).
  bool search = false;
};

struct PartLayout {
  std::string name;
  int bits;
  // < 0: the data sets the count (a variable-length stream); -count is the
  // expected count, which bits-per-weight plans use.
  int64_t count;
};

struct Scheme {
  std::string_view name;
  std::string_view summary;
  int fixed_bits;  // the code width the scheme always uses, 0 when it takes any
  // Throws Error(BadInput) naming the problem when params do not suit the scheme.
  void (*validate)(const QuantParams& params);
  std::vector<PartLayout> (*layout)(const QuantParams& params, int64_t rows, int64_t cols);
  std::vector<QuantPart> (*quantize)(const float* w, int64_t rows, int64_t cols, const QuantParams& params,
                                     const QuantizeOptions& options);
  // Writes rows [row_begin, row_end) as floats, (row_end - row_begin) x cols.
  void (*dequantize)(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out);
  // Error-compensating algorithms (GPTQ) fix a tensor's scales first and then
  // round one weight at a time; a scheme that supports them gives both hooks,
  // others leave them null.
  // The value nearest to v that `fitted`'s stored scales express at (row, col).
  float (*nearest)(const QuantTensor& fitted, int64_t row, int64_t col, float v);
  // The parts of w (fitted.rows x fitted.cols) coded on `fitted`'s stored scales.
  std::vector<QuantPart> (*encode)(const QuantTensor& fitted, const float* w);
  // When every weight is an integer code times its group's scale (symmetric
  // uniform codes), those scales, one per group; empty when q's values have
  // another form (a minimum, a lookup table). ONNX export (DequantizeLinear)
  // rests on it. Null for schemes that never have this form.
  std::vector<float> (*linear_scales)(const QuantTensor& q);
  // Checks a stored tensor's contents where the parts' sizes alone do not make
  // every read safe (variable-length codes); throws Error(BadInput). Null when
  // the layout check suffices.
  void (*check)(const QuantTensor& q);
};

// The per-group scales of a scheme whose "scales" part holds them directly.
std::vector<float> stored_scales(const QuantTensor& q);

const Scheme* find_scheme(std::string_view name);
const std::vector<const Scheme*>& all_schemes();
// find_scheme or Error(BadInput) listing the known names.
const Scheme& scheme_or_throw(std::string_view name);

// Exact storage of `params` on a rows x cols matrix, in bits per weight.
double layout_bits_per_weight(const Scheme& scheme, const QuantParams& params, int64_t rows, int64_t cols);

// Checks that q's parts are exactly those its scheme's layout names (count,
// bits, byte length) and that its params are valid: the guard before reading
// a quantized tensor from a file. Throws Error(BadInput).
void validate_quant_tensor(const QuantTensor& q);

// Checks group size and scale type, the params every family shares; throws Error(BadInput).
void validate_group_and_scales(const QuantParams& params);
// Checks sub_scale_bits / super_block when two-level scales are asked for.
void validate_two_level(const QuantParams& params);
// Single-level schemes: throws unless sub_scale_bits is 0.
void require_single_level(const QuantParams& params, std::string_view scheme);

}  // namespace slmopt::quant
