// Bytes behind a tensor: either owned (64-byte aligned, zero-initialised) or a
// read-only view into a memory-mapped file that the view keeps alive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace slmopt {

// A read-only memory mapping of a whole file. Throws Error(BadInput) naming the
// file when it cannot be opened or mapped.
class MappedFile {
 public:
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  unsigned long long device_ = 0, inode_ = 0;  // noted in core/file_guard while mapped
};

class Buffer {
 public:
  // Owned, zeroed, 64-byte aligned bytes.
  static std::shared_ptr<Buffer> allocate(size_t bytes);
  // A view of [offset, offset+bytes) of `file`; the caller has checked the range.
  static std::shared_ptr<Buffer> view(std::shared_ptr<const MappedFile> file, size_t offset,
                                      size_t bytes);
  // A read-only view of [offset, offset+bytes) of `parent` (an arena slot);
  // the caller has checked the range. Keeps the parent alive.
  static std::shared_ptr<Buffer> slice(std::shared_ptr<const Buffer> parent, size_t offset, size_t bytes);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  const uint8_t* data() const { return data_; }
  // Only owned buffers are writable; throws Error(Internal) on a mapped view.
  uint8_t* mutable_data();
  size_t size() const { return size_; }
  bool is_mapped() const { return file_ != nullptr; }
  // Owned buffers are writable; mapped views and slices are not.
  bool is_owned() const { return owned_ != nullptr; }

 private:
  Buffer() = default;
  uint8_t* owned_ = nullptr;
  size_t owned_bytes_ = 0;  // counted against the memory limit
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::shared_ptr<const MappedFile> file_;
  std::shared_ptr<const Buffer> parent_;
};

}  // namespace slmopt
