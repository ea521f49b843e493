// Files a firmware build consumes beside the blob: a C header holding it, an
// ESP-IDF partition-table row, a JSON manifest and a GNU ld fragment.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace slmopt::firmware {

struct BlobFacts {
  std::string symbol = "slmopt_model";  // C identifier of the array
  uint64_t size = 0;                     // bytes of the blob proper
  uint64_t padded_size = 0;              // rounded up to the flash sector
  uint32_t alignment = 64;
  uint64_t sector = 4096;
  std::string sha256_hex;
  std::string model_name, model_version;
};

// A C identifier from a file or model name ("stories-260K" -> "stories_260K").
std::string c_identifier(const std::string& name);

// const uint8_t SYMBOL[] with the alignment, an optional section attribute and
// #defines for size, hash and version.
std::string c_header(std::span<const uint8_t> blob, const BlobFacts& facts, const std::string& section);

// "name, data, TYPE_SUBTYPE, offset, size," as ESP-IDF's partitions.csv expects.
std::string partition_csv(const BlobFacts& facts, const std::string& partition_name,
                          const std::optional<uint64_t>& offset);

// Offsets, sizes and hashes of what was emitted, for any build system.
std::string manifest_json(const BlobFacts& facts, const std::string& partition_name, const std::optional<uint64_t>& offset,
                          const std::vector<std::pair<std::string, std::string>>& files);

// Places the array's section in REGION (MEMORY name) or, with no region, after
// .rodata of the default script (INSERT AFTER), which a host link accepts.
std::string linker_fragment(const BlobFacts& facts, const std::string& section, const std::string& region);

}  // namespace slmopt::firmware
