// Canonical Huffman codes for the entropy-coded scheme (scheme_entropy.cpp):
// lengths from symbol counts, codes assigned the DEFLATE way (shorter first,
// then by symbol), bits written most significant first into a stream packed
// least significant bit first, decoded one bit at a time as zlib's puff.c
// does, so a device needs no tables beyond the lengths. Lengths come from a
// file when a tensor is read back: the decoder checks them and every read.
#pragma once

#include <cstdint>
#include <vector>

namespace slmopt::quant {

constexpr int kMaxCodeLength = 15;  // stored in 4 bits; 0 = the symbol is absent

// Code lengths (<= max_length) for symbols with these counts; a symbol of count 0
// gets none. Deterministic: equal counts are ordered by symbol.
std::vector<uint8_t> huffman_lengths(const std::vector<uint64_t>& counts, int max_length = kMaxCodeLength);

class HuffmanWriter {
 public:
  explicit HuffmanWriter(const std::vector<uint8_t>& lengths);
  void put(uint32_t symbol);  // a symbol with a length
  uint64_t bits() const { return bit_; }
  std::vector<uint8_t> take() { return std::move(bytes_); }

 private:
  std::vector<uint8_t> lengths_;
  std::vector<uint32_t> codes_;
  std::vector<uint8_t> bytes_;
  uint64_t bit_ = 0;
};

// Decodes a stream of `size` bytes. valid() is false when the lengths
// over-subscribe the code space (no prefix code has them). next() reads a
// bit at a time (the reference); next_fast() looks codewords of up to
// kLookupBits up in a table, through a 64-bit window of the stream, and
// falls back to next() for longer ones. Both return -1 past the stream's end
// or on a bit pattern no symbol has, and give the same symbols.
class HuffmanReader {
 public:
  static constexpr int kLookupBits = 10;

  HuffmanReader(const std::vector<uint8_t>& lengths, const uint8_t* bytes, uint64_t size);
  bool valid() const { return valid_; }
  void seek(uint64_t bit) {
    bit_ = bit;
    have_ = 0;
  }
  uint64_t position() const { return bit_; }
  int64_t next();
  int64_t next_fast();

 private:
  const uint8_t* bytes_;
  uint64_t size_;
  uint64_t limit_;  // in bits
  uint64_t bit_ = 0;
  bool valid_ = true;
  uint16_t counts_[kMaxCodeLength + 1] = {};
  std::vector<uint32_t> sorted_;  // symbols by (length, symbol)
  std::vector<uint16_t> lookup_;  // stream bits -> symbol << 4 | length, 0 = longer than kLookupBits
  uint64_t window_ = 0;           // the stream's bits from bit_ on, have_ of them
  int have_ = 0;
};

}  // namespace slmopt::quant
