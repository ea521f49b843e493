/* Reads a blob with the C99 reader alone and prints what it finds, one line a
 * tensor: name, dtype, dims, then each part's name, bits, count, size and
 * CRC-32C. tests/test_blob.cpp compares the lines with the C++ writer's view.
 * With a second argument it prints the golden vectors instead. Built with
 * -std=c99 -Wall -Wextra -Werror -pedantic: firmware compilers see the same code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLMBLOB_IMPLEMENTATION
#include "slmblob.h"

static unsigned char* read_all(const char* path, long* size) {
  FILE* f = fopen(path, "rb");
  unsigned char* data;
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *size = ftell(f);
  fseek(f, 0, SEEK_SET);
  data = (unsigned char*)malloc(*size > 0 ? (size_t)*size : 1u);
  if (data && fread(data, 1, (size_t)*size, f) != (size_t)*size) {
    free(data);
    data = NULL;
  }
  fclose(f);
  return data;
}

int main(int argc, char** argv) {
  long size = 0;
  unsigned char* data;
  slmblob blob;
  slmblob_status status;
  uint32_t i, k;
  if (argc < 2) return 2;
  data = read_all(argv[1], &size);
  if (!data) return 2;
  status = slmblob_open(&blob, data, (uint64_t)size, 0);
  if (status != SLMBLOB_OK) {
    printf("error %s section %u\n", slmblob_status_text(status), (unsigned)blob.error_section);
    free(data);
    return 1;
  }
  if (argc > 2) {
    float atol, rtol;
    slmblob_golden_tolerance(&blob, &atol, &rtol);
    printf("golden %u %u %u\n", (unsigned)slmblob_golden_samples(&blob), (unsigned)slmblob_golden_inputs(&blob),
           (unsigned)slmblob_golden_outputs(&blob));
    for (i = 0; i < slmblob_golden_samples(&blob); ++i)
      for (k = 0; k < slmblob_golden_inputs(&blob) + slmblob_golden_outputs(&blob); ++k) {
        slmblob_value v;
        if (slmblob_golden_value(&blob, i, k, &v) != SLMBLOB_OK) return 1;
        printf("%s %s %u %llu %08x\n", v.is_output ? "out" : "in", v.name, (unsigned)v.dtype, (unsigned long long)v.size,
               (unsigned)slmblob_crc32c(0, v.data, (size_t)v.size));
      }
    free(data);
    return 0;
  }
  for (i = 0; i < slmblob_tensor_count(&blob); ++i) {
    slmblob_tensor t;
    slmblob_tensor found;
    if (slmblob_tensor_at(&blob, i, &t) != SLMBLOB_OK) return 1;
    if (slmblob_find_tensor(&blob, t.name, &found) != SLMBLOB_OK || found.first_part != t.first_part) return 1;
    printf("%s %s %u [", t.name, t.scheme[0] ? t.scheme : "-", (unsigned)t.dtype);
    for (k = 0; k < t.ndim; ++k) printf(k ? ",%lld" : "%lld", (long long)t.dims[k]);
    printf("]");
    for (k = 0; k < t.part_count; ++k) {
      slmblob_part p;
      if (slmblob_tensor_part(&blob, &t, k, &p) != SLMBLOB_OK) return 1;
      if (((uintptr_t)p.data - (uintptr_t)data) % blob.alignment != 0) return 1;
      printf(" %s:%u:%llu:%llu:%08x", p.name, (unsigned)p.bits, (unsigned long long)p.count, (unsigned long long)p.size,
             (unsigned)slmblob_crc32c(0, p.data, (size_t)p.size));
    }
    printf("\n");
  }
  free(data);
  return 0;
}
