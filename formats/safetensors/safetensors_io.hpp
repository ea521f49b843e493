// safetensors reader and writer (https://github.com/huggingface/safetensors).
//
// Layout: u64 little-endian N | N bytes of JSON header | data buffer.
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the data buffer) plus an optional "__metadata__" object of
// string values. We accept a file only when the buffer is indexed completely:
// offsets sorted by begin must tile [0, buffer size) with no hole or overlap, and
// each tensor's byte length must equal its element count times its dtype size.
// Tensors are memory-mapped, not copied.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/ir.hpp"

namespace slmopt::safetensors {

struct Contents {
  std::vector<NamedTensor> tensors;  // in data-offset order
  std::vector<std::pair<std::string, std::string>> metadata;
};

// Largest header we accept; the reference implementation uses the same bound.
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;

Contents read_file(const std::string& path);

// Reads a single file, a sharded index (`*.safetensors.index.json`), or a folder
// holding either (`model.safetensors` or `model.safetensors.index.json`).
Contents read(const std::string& path);

// Model with the tensors as top-level initializers and no nodes.
Model read_model(const std::string& path);

// Writes one file atomically, tensors in the given order, the header padded with
// spaces to a multiple of 8 bytes.
void write_file(const std::string& path, const std::vector<NamedTensor>& tensors,
                const std::vector<std::pair<std::string, std::string>>& metadata);

// Writes `model-0000i-of-0000n.safetensors` shards of at most max_shard_bytes of
// tensor data (a larger tensor gets a shard of its own) and
// `model.safetensors.index.json` into folder `dir`. Returns the shard count.
int write_sharded(const std::string& dir, const std::vector<NamedTensor>& tensors,
                  const std::vector<std::pair<std::string, std::string>>& metadata,
                  uint64_t max_shard_bytes);

// The model's initializers and metadata (+ provenance) as one file.
void write_model(const Model& model, const std::string& path);

}  // namespace slmopt::safetensors
