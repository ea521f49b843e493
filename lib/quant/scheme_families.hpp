// The scheme families; scheme_registry.cpp lists them in one table.
#pragma once

#include "quant/scheme.hpp"

namespace slmopt::quant {

extern const Scheme kIntScheme;
extern const Scheme kTernaryScheme;
extern const Scheme kBinaryScheme;
extern const Scheme kNormalFloatScheme;
extern const Scheme kFittedTableScheme;
extern const Scheme kTrellisScheme;
extern const Scheme kEntropyScheme;
extern const Scheme kFloatScheme;  // f16/f32 values: sparse storage of float weights

// The int family's plain decoder (any bits and layout); kIntScheme.dequantize
// reads 4- and 8-bit groups faster and must give the same floats.
void dequantize_int_reference(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out);
// The same for the nf and lut families (fixed or stored table).
void dequantize_lut_reference(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out);

// The ec family's decoder reading a bit at a time; kEntropyScheme.dequantize
// looks codewords up in a table.
void dequantize_ec_reference(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out);

// The plain decoder `scheme.dequantize` must equal bit for bit: its family's
// reference where dequantize has a fast path, else dequantize itself.
using Decoder = void (*)(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out);
Decoder reference_decoder(const Scheme& scheme);

}  // namespace slmopt::quant
