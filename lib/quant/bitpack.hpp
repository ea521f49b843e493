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
  void put(uint32_t code) {
    for (int b = 0; b < bits_; ++b, ++bit_)
      if ((code >> b) & 1u) bytes_[static_cast<size_t>(bit_ >> 3)] |= static_cast<uint8_t>(1u << (bit_ & 7));
  }
  std::vector<uint8_t> take() { return std::move(bytes_); }

 private:
  int bits_;
  int64_t bit_ = 0;
  std::vector<uint8_t> bytes_;
};

// Reads code `index` of a stream the caller has checked to hold it.
inline uint32_t read_code(const uint8_t* bytes, int64_t index, int bits) {
  int64_t bit = index * bits;
  uint32_t code = 0;
  for (int b = 0; b < bits; ++b, ++bit) code |= static_cast<uint32_t>((bytes[bit >> 3] >> (bit & 7)) & 1u) << b;
  return code;
}

// Reads `n` consecutive codes from `first` into out.
inline void read_codes(const uint8_t* bytes, int64_t first, int64_t n, int bits, uint32_t* out) {
  if (bits == 8) {
    for (int64_t i = 0; i < n; ++i) out[i] = bytes[first + i];
    return;
  }
  if (bits == 4 && first % 2 == 0) {
    for (int64_t i = 0; i < n; ++i) out[i] = (bytes[(first + i) >> 1] >> (((first + i) & 1) * 4)) & 15u;
    return;
  }
  for (int64_t i = 0; i < n; ++i) out[i] = read_code(bytes, first + i, bits);
}

inline int32_t to_signed(uint32_t code, int bits) { return static_cast<int32_t>(code) - (1 << (bits - 1)); }
inline uint32_t from_signed(int32_t v, int bits) { return static_cast<uint32_t>(v + (1 << (bits - 1))); }

}  // namespace slmopt::quant
