// A ceiling on the bytes the tool holds in its own buffers at once. Sizes come
// from files (shapes, decompressed sizes, arena plans); a hostile or simply
// too-large model must fail with a clear error before the allocation, not be
// killed by the OS halfway through writing an output.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace slmopt {

// The limit: set_memory_limit's value, else SLMOPT_MEMORY_LIMIT (a size as
// parse_byte_size reads it; anything else is Error(Usage)), else the machine's
// physical RAM.
uint64_t memory_limit();
// 0 restores the default.
void set_memory_limit(uint64_t bytes);
// Bytes held now by owned tensor buffers.
uint64_t memory_in_use();

// Throws Error(BadInput) when `bytes` more would pass the limit; `what` names
// what needs them ("tensor 'w'", "the decompressed blob"), `file` the file
// whose contents asked for them.
void check_memory_request(uint64_t bytes, const std::string& what, const std::string& file = {});

// "512 B", "1.25 MiB", "3.00 GiB".
std::string human_bytes(uint64_t bytes);

// "4MiB", "512KiB", "2MB", "1.5M", "4G", "65536" -> bytes (K, M, G, T and the
// -iB forms are powers of 1024, KB, MB, GB decimal); nullopt for anything else.
// The one grammar of --memory-limit, SLMOPT_MEMORY_LIMIT and the device flags.
std::optional<uint64_t> parse_byte_size(std::string_view text);

// Asks the C library to keep freed buffers for reuse rather than hand them back
// to the OS: a model run allocates the same sizes on every run, and fresh pages
// cost a page fault each (15-20 % of a small convolutional model's run time).
// Programs call it once at start; it changes no result.
void reuse_freed_memory();

// Owned buffers report their lifetime here (Buffer does), and so do other
// large holdings whose size a file sets (calibration statistics).
void note_allocated(uint64_t bytes);
void note_freed(uint64_t bytes);

}  // namespace slmopt
