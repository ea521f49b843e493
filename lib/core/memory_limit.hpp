// A ceiling on the bytes the tool holds in its own buffers at once. Sizes come
// from files (shapes, decompressed sizes, arena plans); a hostile or simply
// too-large model must fail with a clear error before the allocation, not be
// killed by the OS halfway through writing an output.
#pragma once

#include <cstdint>
#include <string>

namespace slmopt {

// The limit: set_memory_limit's value, else SLMOPT_MEMORY_LIMIT (bytes, or
// with a K/M/G suffix), else the machine's physical RAM.
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

// Asks the C library to keep freed buffers for reuse rather than hand them back
// to the OS: a model run allocates the same sizes on every run, and fresh pages
// cost a page fault each (15-20 % of a small convolutional model's run time).
// Programs call it once at start; it changes no result.
void reuse_freed_memory();

// Owned buffers report their lifetime here (Buffer does it; nothing else should).
void note_allocated(uint64_t bytes);
void note_freed(uint64_t bytes);

}  // namespace slmopt
