// The C99 firmware reader (slmblob.h) on resealed input: open, then every
// tensor, part and golden value, every byte of which is read; every sparse
// tensor walked row by row (one code per set mask bit, which open promises),
// a sparse float one multiplied by a vector, and every quantized tensor
// dequantized row by row.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "blob/slmblob.h"
#include "blob_reseal.hpp"
#include "fuzz_common.hpp"

namespace {
void read_all(const void* p, uint64_t n) {
  const auto* bytes = static_cast<const uint8_t*>(p);
  volatile uint8_t sum = 0;
  for (uint64_t i = 0; i < n; ++i) sum = static_cast<uint8_t>(sum + bytes[i]);
}
void read_string(const char* s) { read_all(s, std::strlen(s)); }

void walk_sparse(const slmblob& blob, const slmblob_tensor& t) {
  slmblob_sparse s;
  slmblob_part codes;
  if (slmblob_sparse_begin(&blob, &t, &s) != SLMBLOB_OK || s.rows == 0) return;
  if (slmblob_find_part(&blob, &t, "codes", &codes) != SLMBLOB_OK) std::abort();  // open let it through
  uint64_t k = 0;
  do {
    if (s.code != k) std::abort();
    for (int64_t c = 0; c < s.cols; ++c) k += static_cast<uint64_t>(slmblob_sparse_stored(&s, c));
  } while (slmblob_sparse_seek(&s, s.row + 1) == SLMBLOB_OK);
  if (k != codes.count) std::abort();
  if (std::strcmp(t.scheme, "float") == 0) {
    std::vector<float> x(static_cast<size_t>(t.cols), 1.0f), y(static_cast<size_t>(t.rows));
    (void)slmblob_sparse_matvec_f32(&blob, &t, x.data(), y.data());
  }
}
void dequantize_all(const slmblob& blob, const slmblob_tensor& t) {
  if (t.scheme[0] == 0 || t.rows == 0) return;  // rows 0: cols is unbounded
  slmblob_sparse cursor;
  slmblob_sparse* walk = slmblob_sparse_begin(&blob, &t, &cursor) == SLMBLOB_OK ? &cursor : nullptr;
  std::vector<float> row(static_cast<size_t>(t.cols));
  for (int64_t r = 0; r < t.rows; ++r)
    if (slmblob_dequantize_row(&blob, &t, walk, r, row.data()) != SLMBLOB_OK) return;
}
}  // namespace

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  slmopt::fuzz::reseal(bytes);
  slmblob blob;
  if (slmblob_open(&blob, bytes.data(), bytes.size(), 0) != SLMBLOB_OK) return;
  for (uint32_t i = 0; i < slmblob_tensor_count(&blob); ++i) {
    slmblob_tensor t;
    if (slmblob_tensor_at(&blob, i, &t) != SLMBLOB_OK) continue;
    read_string(t.name);
    read_string(t.scheme);
    if (t.data) read_all(t.data, t.size);
    slmblob_tensor found;
    (void)slmblob_find_tensor(&blob, t.name, &found);
    for (uint32_t k = 0; k < t.part_count; ++k) {
      slmblob_part part;
      if (slmblob_tensor_part(&blob, &t, k, &part) != SLMBLOB_OK) continue;
      read_string(part.name);
      read_all(part.data, part.size);
    }
    if (t.sparse_format == SLMBLOB_SPARSE_BITMAP) walk_sparse(blob, t);
    dequantize_all(blob, t);
  }
  const uint32_t values = slmblob_golden_inputs(&blob) + slmblob_golden_outputs(&blob);
  for (uint32_t s = 0; s < slmblob_golden_samples(&blob); ++s)
    for (uint32_t k = 0; k < values; ++k) {
      slmblob_value v;
      if (slmblob_golden_value(&blob, s, k, &v) != SLMBLOB_OK) continue;
      read_string(v.name);
      read_all(v.data, v.size);
    }
}
