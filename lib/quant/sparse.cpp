#include "quant/sparse.hpp"

#include <bit>

#include "core/error.hpp"
#include "quant/bitpack.hpp"
#include "quant/scheme.hpp"

namespace slmopt::quant {
namespace {

bool mask_bit(const uint8_t* mask, int64_t i) { return (mask[i >> 3] >> (i & 7)) & 1u; }

QuantPart& codes_of(QuantTensor& q) {
  for (auto& p : q.parts)
    if (p.name == "codes") return p;
  throw_internal("quantized tensor of scheme " + q.scheme + " has no codes");
}

}  // namespace

bool is_sparse(const QuantTensor& q) { return !q.parts.empty() && q.parts.back().name == kMaskPart; }

bool is_expanded(const QuantTensor& q) {
  const QuantPart* codes = q.part("codes");
  return is_sparse(q) && codes && codes->count == q.rows * q.cols;
}

int64_t count_kept(const uint8_t* mask, int64_t n) {
  int64_t kept = 0;
  const int64_t whole = n / 8;
  for (int64_t i = 0; i < whole; ++i) kept += std::popcount(mask[i]);
  for (int64_t i = whole * 8; i < n; ++i) kept += mask_bit(mask, i);
  return kept;
}

std::vector<uint8_t> nonzero_mask(const float* w, int64_t n, int64_t& kept) {
  std::vector<uint8_t> mask(packed_bytes(n, 1), 0);
  kept = 0;
  for (int64_t i = 0; i < n; ++i)
    if (w[i] != 0.0f) {
      mask[static_cast<size_t>(i >> 3)] |= static_cast<uint8_t>(1u << (i & 7));
      ++kept;
    }
  return mask;
}

bool sparse_pays(int code_bits, int64_t n, int64_t kept) { return kept * code_bits + n < n * code_bits; }

QuantTensor make_sparse(const QuantTensor& dense, std::vector<uint8_t> mask) {
  const int64_t n = dense.rows * dense.cols;
  if (is_sparse(dense) || mask.size() != packed_bytes(n, 1)) throw_internal("make_sparse: not a dense tensor and its mask");
  QuantTensor q = dense;
  QuantPart& codes = codes_of(q);
  const uint8_t* src = codes.bytes.data();
  const int64_t kept = count_kept(mask.data(), n);
  BitWriter out(kept, codes.bits);
  for (int64_t i = 0; i < n; ++i)
    if (mask_bit(mask.data(), i)) out.put(read_code(src, i, codes.bits));
  codes.count = kept;
  codes.bytes = out.take();
  q.parts.push_back({kMaskPart, 1, n, std::move(mask)});
  return q;
}

std::shared_ptr<const QuantTensor> expand_sparse(const QuantTensor& q) {
  auto e = std::make_shared<QuantTensor>(q);
  if (!is_sparse(q) || is_expanded(q)) return e;
  const int64_t n = q.rows * q.cols;
  const uint8_t* mask = q.parts.back().bytes.data();
  QuantPart& codes = codes_of(*e);
  const uint8_t* src = q.part("codes")->bytes.data();
  BitWriter out(n, codes.bits);
  int64_t next = 0;
  for (int64_t i = 0; i < n; ++i) out.put(mask_bit(mask, i) ? read_code(src, next++, codes.bits) : 0u);
  codes.count = n;
  codes.bytes = out.take();
  return e;
}

void zero_pruned(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out) {
  const uint8_t* mask = q.parts.back().bytes.data();
  for (int64_t i = row_begin * q.cols; i < row_end * q.cols; ++i)
    if (!mask_bit(mask, i)) out[i - row_begin * q.cols] = 0.0f;
}

}  // namespace slmopt::quant
