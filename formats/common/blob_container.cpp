#include "common/blob_container.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/json_integer.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"

namespace slmopt::container {
namespace {

constexpr uint64_t kAlign = 64;
constexpr uint64_t kMaxHeader = 256ull << 20;

uint64_t align_up(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

}  // namespace

nlohmann::json Writer::add(const void* data, uint64_t size) {
  const uint64_t offset = align_up(end_);
  blobs_.push_back({static_cast<const uint8_t*>(data), size, offset});
  end_ = offset + size;
  return {{"offset", offset}, {"length", size}};
}

void Writer::write(const std::string& path, const char (&magic)[8], const nlohmann::json& header) const {
  const std::string text = header.dump();
  AtomicFile out(path);
  out.write(magic, 8);
  uint8_t size_bytes[8];
  for (int i = 0; i < 8; ++i) size_bytes[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  out.write(size_bytes, 8);
  out.write(text);
  out.write_zeros(align_up(16 + text.size()) - (16 + text.size()));
  uint64_t at = 0;
  for (const Blob& b : blobs_) {
    out.write_zeros(b.offset - at);
    if (b.size) out.write(b.data, b.size);
    at = b.offset + b.size;
  }
  out.commit();
}

Reader::Reader(const std::string& path, const char (&magic)[8], const std::string& format) : path_(path) {
  file_ = MappedFile::open(path);
  const uint8_t* base = file_->data();
  const uint64_t size = file_->size();
  if (size < 16 || std::memcmp(base, magic, 8) != 0)
    throw_bad_input("not a " + format + " file (bad magic)", path);
  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= static_cast<uint64_t>(base[8 + i]) << (8 * i);
  if (header_size > kMaxHeader || header_size > size - 16)
    throw_bad_input("header length " + std::to_string(header_size) + " runs past the end of the file", path);
  data_start_ = align_up(16 + header_size);
  data_size_ = data_start_ <= size ? size - data_start_ : 0;
  try {
    header_ = nlohmann::json::parse(base + 16, base + 16 + header_size);
    if (header_.at("format").get<std::string>() != format) throw_bad_input("header format is not " + format, path);
  } catch (const nlohmann::json::exception& e) {
    throw_bad_input(std::string("malformed header: ") + e.what(), path);
  }
}

std::pair<uint64_t, uint64_t> Reader::blob(const nlohmann::json& j, const std::string& what) const {
  const uint64_t offset = json_integer<uint64_t>(j.at("offset")), length = json_integer<uint64_t>(j.at("length"));
  if (offset > data_size_ || length > data_size_ - offset)
    throw_bad_input(what + ": bytes [" + std::to_string(offset) + ", +" + std::to_string(length) +
                        ") run past the end of the file",
                    path_);
  return {data_start_ + offset, length};
}

bool has_magic(const std::string& path, const char (&magic)[8]) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;  // a FIFO would block the read
  std::ifstream in(path, std::ios::binary);
  char head[8] = {};
  return in.read(head, 8) && std::memcmp(head, magic, 8) == 0;
}

}  // namespace slmopt::container
