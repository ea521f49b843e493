// Sparse storage: a quantized tensor whose pruned weights are not stored.
// A last part "mask" (1 bit per weight of the rows x cols matrix, row-major,
// least significant bit first, 1 = kept) says which weights exist, and
// "codes" holds only the kept weights' codes in the same order. Every other
// part (scales, minimums, tables) is the dense scheme's, so any scheme and
// bit width can be sparse (float weights through the "float" scheme), and a
// pruned weight dequantizes to exactly 0 whatever its group's minimum.
//
// Files and sessions hold this compact form. Kernels decode it a block of
// rows at a time (sparse_row_window, quant::RowDecoder): only the block's
// codes are expanded, so RAM holds the compact codes, never one per weight.
// expand_sparse, which expands a whole tensor, is the plain reference the
// windows are tested against.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/quant_tensor.hpp"

namespace slmopt::quant {

inline constexpr const char* kMaskPart = "mask";

bool is_sparse(const QuantTensor& q);
// Codes one per weight (expand_sparse's form) rather than one per kept weight.
bool is_expanded(const QuantTensor& q);
// The number of 1 bits among a mask's first n bits.
int64_t count_kept(const uint8_t* mask, int64_t n);
// The number of 1 bits among bits [begin, end) of a mask.
int64_t count_kept_range(const uint8_t* mask, int64_t begin, int64_t end);

// The mask keeping w's non-zero values; `kept` receives their number.
std::vector<uint8_t> nonzero_mask(const float* w, int64_t n, int64_t& kept);

// Whether n codes of `code_bits` stored sparse, keeping `kept`, cost fewer
// bits than dense (the mask costs one bit per weight).
bool sparse_pays(int code_bits, int64_t n, int64_t kept);

// Dense-coded q with the codes of the mask's pruned weights dropped and the mask appended.
QuantTensor make_sparse(const QuantTensor& dense, std::vector<uint8_t> mask);

// q with one code per weight (pruned weights' codes 0); the mask stays.
std::shared_ptr<const QuantTensor> expand_sparse(const QuantTensor& q);

// Rows [row_begin, row_end) of compact sparse q as a tensor of their own
// with one code per weight and the mask's rows; `first_kept` is the number of
// weights kept before row_begin (count_kept_range). Parts the scheme stores
// per row (scales, minimums, super-block scales) are cut to those rows, parts
// it stores once per tensor (a table, a per-tensor scale) are kept whole.
QuantTensor sparse_row_window(const QuantTensor& q, int64_t row_begin, int64_t row_end, int64_t first_kept);

// Sets the pruned weights of rows [row_begin, row_end) in out to 0.
void zero_pruned(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out);

}  // namespace slmopt::quant
