/* A firmware-side use of a packed model, built on the host: the blob is linked
 * into the image from the generated C header, placed by the generated linker
 * fragment, and read in place with slmblob.h (no heap, no copy): a row of the
 * 4-bit embedding table is decoded to floats as the runtime would.
 *
 * On a device the same code runs against the array in flash, or against a
 * pointer to the memory-mapped partition named in the generated partitions.csv
 * row (ESP-IDF: esp_partition_find_first + esp_partition_mmap). */
#include <stdio.h>

#define SLMBLOB_IMPLEMENTATION
#include "slmblob.h"

#include "model.h" /* slmopt pack --emit c-header --symbol model */

/* Defined by the linker fragment (model.ld) around the blob's section. */
extern const uint8_t model_start[];
extern const uint8_t model_end[];

int main(void) {
  slmblob blob;
  slmblob_tensor t;
  slmblob_status status;
  slmblob_part codes;
  uint32_t i;
  float row[64];

  status = slmblob_open(&blob, model, MODEL_SIZE, 0);
  if (status != SLMBLOB_OK) {
    printf("blob invalid: %s\n", slmblob_status_text(status));
    return 1;
  }
  if ((const uint8_t*)model < model_start || (const uint8_t*)model + MODEL_SIZE > model_end) {
    printf("the blob is not inside the linker fragment's section\n");
    return 1;
  }
  if (((uintptr_t)model) % MODEL_ALIGNMENT != 0) {
    printf("the blob is not aligned to %u\n", (unsigned)MODEL_ALIGNMENT);
    return 1;
  }
  printf("model %s: %u bytes, %u tensors, sha256 %.16s...\n", MODEL_NAME, (unsigned)MODEL_SIZE,
         (unsigned)slmblob_tensor_count(&blob), MODEL_SHA256);
  for (i = 0; i < slmblob_tensor_count(&blob) && i < 3; ++i) {
    if (slmblob_tensor_at(&blob, i, &t) != SLMBLOB_OK) return 1;
    printf("  %s: %u dims, %u part(s)%s%s\n", t.name, (unsigned)t.ndim, (unsigned)t.part_count, t.scheme[0] ? ", " : "",
           t.scheme);
  }
  /* A token's embedding, decoded from the 4-bit table in place: one row of
   * floats on the stack, nothing else. Token 1 is BOS in the llama2.c vocabulary. */
  if (slmblob_find_tensor(&blob, "model.embed_tokens.weight", &t) != SLMBLOB_OK || t.cols > 64) {
    printf("embedding table not found\n");
    return 1;
  }
  status = slmblob_dequantize_row(&blob, &t, NULL, 1, row);
  if (status != SLMBLOB_OK) {
    printf("cannot decode the embedding: %s\n", slmblob_status_text(status));
    return 1;
  }
  if (slmblob_tensor_part(&blob, &t, 0, &codes) != SLMBLOB_OK) return 1;
  printf("model.embed_tokens.weight [%lld x %lld], %s %u-bit, codes at offset %lu; token 1: %.6f %.6f %.6f ...\n",
         (long long)t.dims[0], (long long)t.dims[1], t.scheme, (unsigned)t.bits,
         (unsigned long)(codes.data - model), row[0], row[1], row[2]);
  return 0;
}
