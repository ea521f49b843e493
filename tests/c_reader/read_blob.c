/* Reads a blob with the C99 reader alone and prints what it finds, one line a
 * tensor: name, dtype, dims, then each part's name, bits, count, size and
 * CRC-32C. tests/test_blob.cpp compares the lines with the C++ writer's view.
 * With a second argument, "golden", it prints the golden vectors instead; with
 * "sparse", W x of every sparse float weight (slmblob_sparse_matvec_f32, x[c]
 * = (c % 7 - 3) / 4) as float bits, and where seeks land; with "rows", the
 * CRC-32C of every quantized tensor's rows from slmblob_dequantize_row (or
 * "unsupported"). Built with
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
  if (argc > 2 && strcmp(argv[2], "rows") == 0) {
    slmblob_sparse previous; /* the last sparse tensor's cursor: refused for another */
    int have_previous = 0;
    for (i = 0; i < slmblob_tensor_count(&blob); ++i) {
      slmblob_tensor t;
      slmblob_sparse cursor, *walk = NULL;
      float *row, *again;
      uint32_t crc = 0;
      int64_t r;
      if (slmblob_tensor_at(&blob, i, &t) != SLMBLOB_OK) return 1;
      if (!t.scheme[0] || t.rows == 0) continue;
      row = (float*)malloc((size_t)t.cols * sizeof(float) + 1);
      again = (float*)malloc((size_t)t.cols * sizeof(float) + 1);
      if (!row || !again) return 2;
      if (t.sparse_format == SLMBLOB_SPARSE_BITMAP) {
        if (slmblob_sparse_begin(&blob, &t, &cursor) != SLMBLOB_OK) return 1;
        walk = &cursor;
        if (have_previous && slmblob_dequantize_row(&blob, &t, &previous, 0, row) != SLMBLOB_E_ARGUMENT) return 1;
      }
      for (r = 0; r < t.rows; ++r) {
        status = slmblob_dequantize_row(&blob, &t, walk, r, row);
        if (status != SLMBLOB_OK) break;
        crc = slmblob_crc32c(crc, row, (size_t)t.cols * sizeof(float));
      }
      if (status == SLMBLOB_E_UNSUPPORTED) {
        printf("%s unsupported\n", t.name);
      } else if (status != SLMBLOB_OK) {
        return 1;
      } else {
        /* The last row again, on its own (no cursor): the same floats. */
        if (slmblob_dequantize_row(&blob, &t, NULL, t.rows - 1, again) != SLMBLOB_OK ||
            memcmp(row, again, (size_t)t.cols * sizeof(float)) != 0)
          return 1;
        printf("%s %08x\n", t.name, (unsigned)crc);
      }
      if (walk) {
        previous = cursor;
        have_previous = 1;
      }
      free(row);
      free(again);
    }
    free(data);
    return 0;
  }
  if (argc > 2 && strcmp(argv[2], "sparse") == 0) {
    for (i = 0; i < slmblob_tensor_count(&blob); ++i) {
      slmblob_tensor t;
      slmblob_sparse s;
      float *x, *y;
      uint64_t last_row_code;
      int64_t c;
      if (slmblob_tensor_at(&blob, i, &t) != SLMBLOB_OK) return 1;
      if (t.sparse_format != SLMBLOB_SPARSE_BITMAP) continue;
      if (slmblob_sparse_begin(&blob, &t, &s) != SLMBLOB_OK || t.rows < 2) return 1;
      /* Forward to the last row, back to row 1: where each row's codes start. */
      if (slmblob_sparse_seek(&s, t.rows - 1) != SLMBLOB_OK) return 1;
      last_row_code = s.code;
      if (slmblob_sparse_seek(&s, 1) != SLMBLOB_OK || slmblob_sparse_seek(&s, t.rows) != SLMBLOB_E_NOT_FOUND) return 1;
      printf("%s rows %lld cols %lld row1 %llu last %llu", t.name, (long long)t.rows, (long long)t.cols,
             (unsigned long long)s.code, (unsigned long long)last_row_code);
      x = (float*)malloc((size_t)t.cols * sizeof(float));
      y = (float*)malloc((size_t)t.rows * sizeof(float));
      if (!x || !y) return 2;
      for (c = 0; c < t.cols; ++c) x[c] = (float)(c % 7 - 3) / 4.0f;
      if (slmblob_sparse_matvec_f32(&blob, &t, x, y) != SLMBLOB_OK) return 1;
      for (c = 0; c < t.rows; ++c) {
        uint32_t bits;
        memcpy(&bits, &y[c], sizeof bits);
        printf(" %08x", (unsigned)bits);
      }
      printf("\n");
      free(x);
      free(y);
    }
    free(data);
    return 0;
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
