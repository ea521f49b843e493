/* A firmware-side use of a packed model, built on the host: the blob is linked
 * into the image from the generated C header, placed by the generated linker
 * fragment, and read in place with slmblob.h (no heap, no copy).
 *
 * On a device the same code runs against the array in flash, or against a
 * pointer to the memory-mapped partition named in the generated partitions.csv
 * row (ESP-IDF: esp_partition_find_first + esp_partition_mmap). */
#include <stdio.h>
#include <string.h>

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
  uint32_t i;
  float first;

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
  if (slmblob_find_tensor(&blob, "model.embed_tokens.weight", &t) != SLMBLOB_OK || !t.data) {
    printf("embedding table not found\n");
    return 1;
  }
  memcpy(&first, t.data, sizeof first); /* weights are used in place: t.data points into the blob */
  printf("model.embed_tokens.weight [%lld x %lld] at offset %lu, first value %.6f\n", (long long)t.dims[0],
         (long long)t.dims[1], (unsigned long)((const uint8_t*)t.data - model), first);
  return 0;
}
