#include "quant/sparse.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>

#include "core/error.hpp"
#include "quant/bitpack.hpp"
#include "quant/scheme.hpp"

namespace slmopt::quant {
namespace {

static_assert(std::endian::native == std::endian::little, "codes are read and written a word at a time");

bool mask_bit(const uint8_t* mask, int64_t i) { return (mask[i >> 3] >> (i & 7)) & 1u; }

QuantPart& codes_of(QuantTensor& q) {
  for (auto& p : q.parts)
    if (p.name == "codes") return p;
  throw_internal("quantized tensor of scheme " + q.scheme + " has no codes");
}

// Set bits of a 64-bit word, SWAR: std::popcount without -mpopcnt is a call per word.
int popcount64(uint64_t x) {
  x -= (x >> 1) & 0x5555555555555555u;
  x = (x & 0x3333333333333333u) + ((x >> 2) & 0x3333333333333333u);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fu;
  return static_cast<int>((x * 0x0101010101010101u) >> 56);
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
  int64_t byte = 0;
  for (; byte + 8 <= whole; byte += 8) {
    uint64_t word;
    std::memcpy(&word, mask + byte, 8);
    kept += popcount64(word);
  }
  for (; byte < whole; ++byte) kept += popcount64(mask[byte]);
  for (int64_t i = whole * 8; i < n; ++i) kept += mask_bit(mask, i);
  return kept;
}

int64_t count_kept_range(const uint8_t* mask, int64_t begin, int64_t end) {
  int64_t kept = 0;
  for (; begin < end && (begin & 7); ++begin) kept += mask_bit(mask, begin);
  if (begin >= end) return kept;
  return kept + count_kept(mask + begin / 8, end - begin);
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

namespace {

// Elements [first, first + count) of a stream of `bits`-bit elements.
std::vector<uint8_t> slice_elements(const uint8_t* bytes, int64_t first, int64_t count, int bits) {
  if ((first * bits) % 8 == 0) {
    const uint8_t* begin = bytes + first * bits / 8;
    std::vector<uint8_t> out(begin, begin + packed_bytes(count, bits));
    if ((count * bits) % 8) out.back() &= static_cast<uint8_t>((1u << ((count * bits) % 8)) - 1);
    return out;
  }
  BitWriter out(count, bits);
  for (int64_t i = 0; i < count; ++i) out.put(read_code(bytes, first + i, bits));
  return out.take();
}

// Codes of `bits` (1..32) bits from compact `src` (its code `first` on),
// one for each of mask bits [mask_first, mask_first + n): the next compact
// code where the bit is set, 0 where it is not. A pruned mask is close to
// random, so this takes a byte of the mask at once and computes each of its
// eight codes independently (its rank among the byte's kept weights is a
// popcount), with no branch on the mask.
class CodeExpander {
  // A table, not std::popcount: without -mpopcnt that is a dozen instructions.
  static constexpr std::array<std::array<uint8_t, 9>, 256> kRanks = [] {
    std::array<std::array<uint8_t, 9>, 256> t{};
    for (unsigned b = 0; b < 256; ++b)
      for (unsigned k = 1; k <= 8; ++k) t[b][k] = static_cast<uint8_t>(t[b][k - 1] + ((b >> (k - 1)) & 1u));
    return t;
  }();

 public:
  CodeExpander(const uint8_t* src, size_t src_bytes, int64_t first, int bits, uint8_t* dst)
      : src_(src), src_bytes_(src_bytes), bits_(bits), code_mask_((uint64_t{1} << bits) - 1),
        read_bit_(static_cast<uint64_t>(first) * static_cast<uint64_t>(bits)), out_(dst) {}

  // Mask bits [first_bit, first_bit + count) of the byte `byte`.
  void put_byte(unsigned byte, int first_bit, int count) {
    const uint8_t* rank = kRanks[byte].data();  // rank[k]: kept weights among the byte's bits below k
    for (int k = first_bit; k < first_bit + count; ++k) {
      const uint64_t keep = (byte >> k) & 1u;
      put(code_at(read_bit_ + static_cast<uint64_t>(rank[k] - rank[first_bit]) * bits_) & (0 - keep));
    }
    read_bit_ += static_cast<uint64_t>(rank[first_bit + count] - rank[first_bit]) * bits_;
  }

  void finish() {
    for (; have_ > 0; have_ -= 8, acc_ >>= 8) *out_++ = static_cast<uint8_t>(acc_);
  }

 private:
  uint64_t code_at(uint64_t bit) const {
    const size_t byte = static_cast<size_t>(bit >> 3);
    uint64_t word = 0;
    if (byte + 8 <= src_bytes_) {
      std::memcpy(&word, src_ + byte, 8);
    } else {
      for (size_t i = byte; i < src_bytes_; ++i) word |= static_cast<uint64_t>(src_[i]) << (8 * (i - byte));
    }
    return (word >> (bit & 7)) & code_mask_;
  }

  void put(uint64_t code) {
    acc_ |= code << have_;
    have_ += bits_;
    if (have_ >= 32) {
      const uint32_t low = static_cast<uint32_t>(acc_);
      std::memcpy(out_, &low, 4);
      out_ += 4;
      acc_ >>= 32;
      have_ -= 32;
    }
  }

  const uint8_t* src_;
  size_t src_bytes_;
  int bits_;
  uint64_t code_mask_, read_bit_;
  uint8_t* out_;
  uint64_t acc_ = 0;
  int have_ = 0;
};

void expand_codes(const uint8_t* src, size_t src_bytes, int64_t first, int bits, const uint8_t* mask,
                  int64_t mask_first, int64_t n, uint8_t* dst) {
  CodeExpander expand(src, src_bytes, first, bits, dst);
  for (int64_t m = mask_first; m < mask_first + n;) {
    const int first_bit = static_cast<int>(m & 7);
    const int count = static_cast<int>(std::min<int64_t>(8 - first_bit, mask_first + n - m));
    expand.put_byte(mask[m >> 3], first_bit, count);
    m += count;
  }
  expand.finish();
}

}  // namespace

QuantTensor sparse_row_window(const QuantTensor& q, int64_t row_begin, int64_t row_end, int64_t first_kept) {
  if (!is_sparse(q) || is_expanded(q) || row_begin < 0 || row_end > q.rows || row_begin > row_end)
    throw_internal("sparse_row_window: not a compact sparse tensor and rows of it");
  const int64_t n = row_end - row_begin, cols = q.cols;
  const Scheme& scheme = scheme_or_throw(q.scheme);
  // A part the scheme stores per row changes count with the rows; one stored per tensor does not.
  const std::vector<PartLayout> full = scheme.layout(q.params, q.rows, cols), window = scheme.layout(q.params, n, cols);
  if (full.size() + 1 != q.parts.size() || window.size() != full.size())
    throw_internal("sparse_row_window: parts of " + q.scheme + " do not match its layout");
  QuantTensor w;
  w.scheme = q.scheme;
  w.params = q.params;
  w.shape = {n, cols};
  w.rows = n;
  w.cols = cols;
  const uint8_t* mask = q.parts.back().bytes.data();
  for (size_t i = 0; i < full.size(); ++i) {
    const QuantPart& part = q.parts[i];
    if (part.name == "codes") {
      // validate_quant_tensor made the codes as many as the mask keeps; reads stay within the bytes regardless.
      if (first_kept < 0 || first_kept > part.count) throw_internal("sparse_row_window: first kept weight out of range");
      std::vector<uint8_t> codes(packed_bytes(n * cols, part.bits));
      expand_codes(part.bytes.data(), part.bytes.size(), first_kept, part.bits, mask, row_begin * cols, n * cols,
                   codes.data());
      w.parts.push_back({part.name, part.bits, n * cols, std::move(codes)});
    } else if (window[i].count == full[i].count || n == 0) {
      w.parts.push_back(part);
    } else {
      if (full[i].count % q.rows || window[i].count != full[i].count / q.rows * n)
        throw_internal("sparse_row_window: part " + part.name + " of " + q.scheme + " is neither per row nor per tensor");
      const int64_t per_row = full[i].count / q.rows;
      w.parts.push_back({part.name, part.bits, per_row * n,
                         slice_elements(part.bytes.data(), per_row * row_begin, per_row * n, part.bits)});
    }
  }
  w.parts.push_back({kMaskPart, 1, n * cols, slice_elements(mask, row_begin * cols, n * cols, 1)});
  return w;
}

void zero_pruned(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out) {
  const uint8_t* mask = q.parts.back().bytes.data();
  const int64_t begin = row_begin * q.cols, end = row_end * q.cols;
  for (int64_t i = begin; i < end;) {
    if ((i & 7) == 0 && i + 8 <= end && mask[i >> 3] == 0xff) {  // eight kept weights: nothing to zero
      i += 8;
      continue;
    }
    if ((i & 7) == 0 && i + 8 <= end) {  // a byte of the mask at once, without branches
      const unsigned byte = mask[i >> 3];
      float* o = out + (i - begin);
      for (int k = 0; k < 8; ++k)
        o[k] = std::bit_cast<float>(std::bit_cast<uint32_t>(o[k]) & (0u - ((byte >> k) & 1u)));
      i += 8;
      continue;
    }
    if (!mask_bit(mask, i)) out[i - begin] = 0.0f;
    ++i;
  }
}

}  // namespace slmopt::quant
