#include "core/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/buffer.hpp"
#include "core/error.hpp"
#include "core/file_guard.hpp"

namespace slmopt {

namespace {

thread_local OutputSet* current_set = nullptr;

void rename_into_place(const std::string& temp, const std::string& target, const std::string& path,
                       bool may_replace_input) {
  // Checked again: an input may have been read since the output was opened.
  if (checked_output_path(path, may_replace_input) != target)
    throw_bad_input("the output changed while it was written", path);
  if (::rename(temp.c_str(), target.c_str()) != 0)
    throw_bad_input(std::string("cannot rename output into place: ") + std::strerror(errno), path);
  untrack_temporary(temp);
}

}  // namespace

AtomicFile::AtomicFile(std::string path, bool may_replace_input)
    : path_(std::move(path)), may_replace_input_(may_replace_input) {
  target_path_ = checked_output_path(path_, may_replace_input);
  temp_path_ = target_path_ + ".tmp.XXXXXX";
  std::vector<char> templ(temp_path_.begin(), temp_path_.end());
  templ.push_back('\0');
  fd_ = ::mkstemp(templ.data());
  if (fd_ < 0) throw_bad_input(std::string("cannot create output: ") + std::strerror(errno), path_);
  temp_path_ = templ.data();
  track_temporary(temp_path_);
  ::fchmod(fd_, 0644);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) {
    ::unlink(temp_path_.c_str());
    untrack_temporary(temp_path_);
  }
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
  if (current_set) {
    current_set->pending_.push_back({temp_path_, target_path_, path_, may_replace_input_});
  } else {
    rename_into_place(temp_path_, target_path_, path_, may_replace_input_);
  }
  committed_ = true;
}

OutputSet::OutputSet() : outer_(current_set) { current_set = this; }

OutputSet::~OutputSet() {
  current_set = outer_;
  for (const auto& p : pending_) {
    ::unlink(p.temp.c_str());
    untrack_temporary(p.temp);
  }
}

void OutputSet::commit() {
  current_set = outer_;
  std::vector<Pending> pending = std::move(pending_);
  pending_.clear();
  if (outer_) {
    for (auto& p : pending) outer_->pending_.push_back(std::move(p));
    return;
  }
  // Every target is checked before the first rename, so a refusal leaves none renamed.
  for (const auto& p : pending) checked_output_path(p.path, p.may_replace_input);
  for (size_t i = 0; i < pending.size(); ++i) {
    try {
      rename_into_place(pending[i].temp, pending[i].target, pending[i].path, pending[i].may_replace_input);
    } catch (...) {
      pending_.assign(pending.begin() + static_cast<std::ptrdiff_t>(i), pending.end());  // the destructor removes them
      throw;
    }
  }
}

void write_file_atomically(const std::string& path, std::string_view contents, bool may_replace_input) {
  AtomicFile f(path, may_replace_input);
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
