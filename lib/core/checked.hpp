// Overflow-checked arithmetic for sizes, counts and offsets read from files.
// Every product of dimensions and every offset+length from untrusted input goes
// through these helpers (as safetensors and ONNX do) before it is used.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/error.hpp"

namespace slmopt {

inline int64_t checked_mul(int64_t a, int64_t b, const char* what = "size") {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
    throw_bad_input(std::string(what) + " overflows 64-bit integers");
  return r;
}

inline int64_t checked_add(int64_t a, int64_t b, const char* what = "size") {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r))
    throw_bad_input(std::string(what) + " overflows 64-bit integers");
  return r;
}

// Product of dimensions; every dimension must be >= 0.
inline int64_t checked_numel(std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw_bad_input("negative dimension " + std::to_string(d));
    n = checked_mul(n, d, "element count");
  }
  return n;
}

// True when [offset, offset+length) lies inside [0, size).
inline bool range_within(uint64_t offset, uint64_t length, uint64_t size) {
  return offset <= size && length <= size - offset;
}

}  // namespace slmopt
