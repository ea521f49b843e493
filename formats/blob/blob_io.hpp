// The flat blob: a model laid out for flash, used in place (docs/blob-format.md).
// The C99 reader slmblob.h validates it; this side writes it and loads it into
// the IR without copying weights (tensors are views of the mapped file).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/sha256.hpp"
#include "core/ir.hpp"

namespace slmopt::blob {

// Input samples and the outputs the packed model gave for them: the device's self-test.
struct GoldenVectors {
  std::vector<std::string> input_names, output_names;
  std::vector<std::vector<Tensor>> inputs, outputs;  // [sample][name index]
  float atol = 0, rtol = 0;                            // float outputs: |got - want| <= atol + rtol |want|
};

// Error(Usage) unless a power of two from 8 to 65536 (the blob's weight alignment).
void check_alignment(uint64_t alignment);

struct BlobOptions {
  uint32_t alignment = 64;     // of every weight part; a power of two, 8..65536
  std::string model_name;      // metadata
  std::string model_version;   // metadata
  std::string source_sha256;   // of the file the model came from
  std::optional<GoldenVectors> golden;
};

struct BlobLayout {
  uint64_t file_bytes = 0, weight_bytes = 0, padding_bytes = 0;
  std::vector<std::pair<std::string, uint64_t>> section_bytes;  // by section name, file order
};

// Receives a blob's bytes in file order.
using BlobSink = std::function<void(const uint8_t* data, uint64_t size)>;

// Writes the blob to `sink` in file order, each weight part straight from the
// model's memory (memory: the tables and the graph, not a copy of the
// weights). Returns its SHA-256, which is also its trailer. Deterministic for
// the same model and options.
Sha256 write_blob(const Model& model, const BlobOptions& options, const BlobSink& sink, BlobLayout* layout = nullptr);

// The blob's bytes in memory (write_blob into a vector).
std::vector<uint8_t> build_blob(const Model& model, const BlobOptions& options, BlobLayout* layout = nullptr);

// The blob's size in bytes, without holding it (write_blob into nothing).
uint64_t blob_size(const Model& model, const BlobOptions& options);

// Validates a blob in memory as BlobFile does (header, CRCs, tables, SHA-256);
// returns its SHA-256 as hex. Throws Error(BadInput) naming `name`.
std::string check_blob_bytes(const uint8_t* data, uint64_t size, const std::string& name);

// Whether the file starts with the blob magic.
bool is_blob_file(const std::string& path);

// A validated, mapped blob: the header, every section's CRC-32C and the SHA-256
// are checked on open. Throws Error(BadInput) naming the file and the problem.
class BlobFile {
 public:
  explicit BlobFile(const std::string& path);
  ~BlobFile();
  BlobFile(const BlobFile&) = delete;
  BlobFile& operator=(const BlobFile&) = delete;

  // The model, its weights views of the mapping (which they keep alive).
  Model model() const;
  nlohmann::json metadata() const;
  std::optional<GoldenVectors> golden() const;
  const std::string& sha256_hex() const { return sha256_hex_; }
  uint64_t size() const;  // bytes of the blob proper (flash padding excluded)
  uint32_t alignment() const;

 private:
  struct Impl;
  std::string path_;
  std::string sha256_hex_;
  std::unique_ptr<Impl> impl_;
};

Model read_blob(const std::string& path);

}  // namespace slmopt::blob
