#include "core/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/buffer.hpp"
#include "core/error.hpp"

namespace slmopt {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  temp_path_ = path_ + ".tmp.XXXXXX";
  std::vector<char> templ(temp_path_.begin(), temp_path_.end());
  templ.push_back('\0');
  fd_ = ::mkstemp(templ.data());
  if (fd_ < 0) throw_bad_input(std::string("cannot create output: ") + std::strerror(errno), path_);
  temp_path_ = templ.data();
  ::fchmod(fd_, 0644);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t bytes) {
  const auto* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = ::write(fd_, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw_bad_input(std::string("write failed: ") + std::strerror(errno), path_);
    p += n;
    bytes -= static_cast<size_t>(n);
    written_ += static_cast<uint64_t>(n);
  }
}

void AtomicFile::write_zeros(size_t bytes) {
  static const char zeros[4096] = {};
  while (bytes > 0) {
    size_t n = bytes < sizeof(zeros) ? bytes : sizeof(zeros);
    write(zeros, n);
    bytes -= n;
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
    fd_ = -1;
    throw_bad_input(std::string("cannot flush output: ") + std::strerror(errno), path_);
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0)
    throw_bad_input(std::string("cannot rename output into place: ") + std::strerror(errno), path_);
  committed_ = true;
}

void write_file_atomically(const std::string& path, std::string_view contents) {
  AtomicFile f(path);
  f.write(contents);
  f.commit();
}

std::string read_small_file(const std::string& path, size_t max_bytes) {
  auto file = MappedFile::open(path);
  if (file->size() > max_bytes)
    throw_bad_input("file is larger than the " + std::to_string(max_bytes) + "-byte limit", path);
  if (file->size() == 0) return {};
  return std::string(reinterpret_cast<const char*>(file->data()), file->size());
}

}  // namespace slmopt
