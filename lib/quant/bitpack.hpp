// Packs unsigned codes of 1..32 bits into a byte stream, least significant bit
// first, with no padding between codes: a tensor's codes cost exactly
// count * bits bits (plus the last byte's spare bits).
#pragma once

#include <cstdint>
#include <vector>

namespace slmopt::quant {

inline size_t packed_bytes(int64_t count, int bits) {
  return static_cast<size_t>((count * bits + 7) / 8);
}

class BitWriter {
 public:
  BitWriter(int64_t count, int bits) : bits_(bits), bytes_(packed_bytes(count, bits), 0) {}
  // Bits of `code` above the width are dropped. A code spans at most 5 bytes.
  void put(uint32_t code) {
    const int shift = static_cast<int>(bit_ & 7);
    const uint64_t v = (static_cast<uint64_t>(code) & ((uint64_t{1} << bits_) - 1)) << shift;
    uint8_t* p = bytes_.data() + (bit_ >> 3);
    const int span = (shift + bits_ + 7) >> 3;
    for (int i = 0; i < span; ++i) p[i] |= static_cast<uint8_t>(v >> (8 * i));
    bit_ += bits_;
  }
  std::vector<uint8_t> take() { return std::move(bytes_); }

 private:
  int bits_;
  int64_t bit_ = 0;
  std::vector<uint8_t> bytes_;
};

// Reads code `index` of a stream the caller has checked to hold it.
// A code of up to 32 bits spans at most 5 bytes; only those bytes are read
// (never past the stream's end).
inline uint32_t read_code(const uint8_t* bytes, int64_t index, int bits) {
  const int64_t bit = index * bits;
  const uint8_t* p = bytes + (bit >> 3);
  const int shift = static_cast<int>(bit & 7);
  const int span = (shift + bits + 7) >> 3;
  uint64_t word = 0;
  for (int i = 0; i < span; ++i) word |= static_cast<uint64_t>(p[i]) << (8 * i);
  return static_cast<uint32_t>((word >> shift) & ((uint64_t{1} << bits) - 1));
}

// Reads `n` consecutive codes from `first` into out.
inline void read_codes(const uint8_t* bytes, int64_t first, int64_t n, int bits, uint32_t* out) {
  if (bits == 8) {
    for (int64_t i = 0; i < n; ++i) out[i] = bytes[first + i];
    return;
  }
  if (bits == 4 && first % 2 == 0) {
    const uint8_t* p = bytes + (first >> 1);
    int64_t i = 0;
    for (; i + 1 < n; i += 2) {
      out[i] = p[i >> 1] & 15u;
      out[i + 1] = p[i >> 1] >> 4;
    }
    if (i < n) out[i] = p[i >> 1] & 15u;
    return;
  }
  for (int64_t i = 0; i < n; ++i) out[i] = read_code(bytes, first + i, bits);
}

inline int32_t to_signed(uint32_t code, int bits) { return static_cast<int32_t>(code) - (1 << (bits - 1)); }
inline uint32_t from_signed(int32_t v, int bits) { return static_cast<uint32_t>(v + (1 << (bits - 1))); }

}  // namespace slmopt::quant
