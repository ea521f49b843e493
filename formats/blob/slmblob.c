/* The C99 reader's implementation, compiled once for the C++ loader, which
 * validates blobs with the very code firmware runs. On x86-64 the section
 * CRCs use SSE4.2's crc32 instruction when the CPU has it (about 15 times the
 * table's speed); tests/test_blob.cpp checks it against the table. */
#include <stddef.h>
#include <stdint.h>

uint32_t slmopt_crc32c(uint32_t crc, const void* data, size_t size);
#define SLMBLOB_CRC32C slmopt_crc32c
#define SLMBLOB_IMPLEMENTATION
#include "slmblob.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#include <string.h>

__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const uint8_t* p, size_t size) {
  uint64_t c = ~crc;
  for (; size >= 8; size -= 8, p += 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
  }
  for (; size; --size, ++p) c = _mm_crc32_u8((uint32_t)c, *p);
  return ~(uint32_t)c;
}

uint32_t slmopt_crc32c(uint32_t crc, const void* data, size_t size) {
  static int has_sse42 = -1;
  if (has_sse42 < 0) has_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
  return has_sse42 ? crc32c_sse42(crc, (const uint8_t*)data, size) : slmblob_crc32c(crc, data, size);
}
#else
uint32_t slmopt_crc32c(uint32_t crc, const void* data, size_t size) { return slmblob_crc32c(crc, data, size); }
#endif
