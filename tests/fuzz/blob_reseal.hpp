// A mutated blob almost never passes its CRCs and SHA-256, so the fuzzer would
// only ever test the checksum check. reseal() recomputes them (where the
// header and section table say they are) so the tables behind them get fuzzed;
// the checksum checks themselves are covered by tests/test_blob.cpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "blob/crc32c.hpp"
#include "common/sha256.hpp"

namespace slmopt::fuzz {

inline uint32_t le32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }
inline uint64_t le64(const uint8_t* p) { return le32(p) | (static_cast<uint64_t>(le32(p + 4)) << 32); }
inline void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint32_t crc32c(const uint8_t* p, uint64_t n) { return slmopt_crc32c(0, p, n); }

inline void reseal(std::vector<uint8_t>& b) {
  if (b.size() < 64) return;
  const uint64_t count = le32(&b[28]) <= 32 ? le32(&b[28]) : 0;
  if (64 + count * 32 <= b.size()) {
    for (uint64_t k = 0; k < count; ++k) {
      uint8_t* entry = &b[64 + 32 * k];
      const uint64_t offset = le64(entry + 8), size = le64(entry + 16);
      if (offset <= b.size() && size <= b.size() - offset) put32(entry + 4, crc32c(b.data() + offset, size));
    }
    put32(&b[48], crc32c(&b[64], count * 32));
  }
  put32(&b[60], crc32c(b.data(), 60));
  const uint64_t file_size = le64(&b[40]);
  if (file_size >= 64 + 32 && file_size <= b.size()) {
    const auto digest = sha256(b.data(), file_size - 32);
    std::memcpy(&b[file_size - 32], digest.data(), 32);
  }
}

}  // namespace slmopt::fuzz
