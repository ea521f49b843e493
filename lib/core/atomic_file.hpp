// Writes a file so that readers see either the old file or the complete new one:
// bytes go to a temporary file in the same folder, which commit() renames over
// the target. Destroying an uncommitted AtomicFile removes the temporary, so a
// failure never leaves a partial output behind.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace slmopt {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  void write_zeros(size_t bytes);
  uint64_t bytes_written() const { return written_; }
  // Flushes, fsyncs and renames onto the target path.
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// Convenience for small files written in one piece.
void write_file_atomically(const std::string& path, std::string_view contents);

// Reads a whole (small) file; throws Error(BadInput) naming the file on failure or
// when it is larger than max_bytes.
std::string read_small_file(const std::string& path, size_t max_bytes = 256u << 20);

}  // namespace slmopt
