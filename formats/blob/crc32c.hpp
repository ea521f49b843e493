// CRC-32C at hardware speed where the CPU allows (slmblob.c), the same values
// as the C99 reader's portable slmblob_crc32c.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" uint32_t slmopt_crc32c(uint32_t crc, const void* data, size_t size);
