// The container .slm and calibration statistics files share: a magic, a JSON
// header naming blobs by offset and length, and a 64-byte-aligned data region.
//
//   bytes 0-7    magic (8 bytes, one per file kind)
//   bytes 8-15   header length H (u64 little-endian)
//   bytes 16..   header: UTF-8 JSON, H bytes
//   then         zero padding to a multiple of 64; the data region
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/buffer.hpp"

namespace slmopt::container {

// Collects blobs (which must outlive write()) and writes the file atomically.
class Writer {
 public:
  // {"offset", "length"} of the blob in the data region, for the header.
  nlohmann::json add(const void* data, uint64_t size);
  void write(const std::string& path, const char (&magic)[8], const nlohmann::json& header) const;

 private:
  struct Blob {
    const uint8_t* data;
    uint64_t size, offset;
  };
  std::vector<Blob> blobs_;
  uint64_t end_ = 0;
};

// A mapped container whose header has been parsed; every blob range is
// checked against the file before it is handed out.
class Reader {
 public:
  // Throws Error(BadInput) naming the file: bad magic, header past the end,
  // malformed JSON, or a header whose "format" is not `format`.
  Reader(const std::string& path, const char (&magic)[8], const std::string& format);

  const nlohmann::json& header() const { return header_; }
  const std::string& path() const { return path_; }
  // {file offset, length} of the blob `j` names; `what` names it in errors.
  std::pair<uint64_t, uint64_t> blob(const nlohmann::json& j, const std::string& what) const;
  const uint8_t* base() const { return file_->data(); }
  const std::shared_ptr<const MappedFile>& file() const { return file_; }

 private:
  std::string path_;
  std::shared_ptr<const MappedFile> file_;
  nlohmann::json header_;
  uint64_t data_start_ = 0, data_size_ = 0;
};

bool has_magic(const std::string& path, const char (&magic)[8]);

}  // namespace slmopt::container
