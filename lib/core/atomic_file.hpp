// Writes a file so that readers see either the old file or the complete new one:
// bytes go to a temporary file in the same folder, which commit() renames over
// the target. Destroying an uncommitted AtomicFile removes the temporary (and so
// does SIGINT/SIGTERM), so a failure never leaves a partial output behind. The
// target is checked first (core/file_guard.hpp): never a file this process
// read, never a device, FIFO or folder; a symbolic link is written through.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace slmopt {

class AtomicFile {
 public:
  // may_replace_input: the target may be a file this process read (a cache
  // that is read, then refreshed).
  explicit AtomicFile(std::string path, bool may_replace_input = false);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  void write_zeros(size_t bytes);
  uint64_t bytes_written() const { return written_; }
  // Flushes, fsyncs and renames onto the target path; inside an OutputSet the
  // rename waits for the set's commit().
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_;         // as the user named it, for messages
  std::string target_path_;  // what the rename replaces
  std::string temp_path_;
  bool may_replace_input_ = false;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// Outputs of several files (run's .npy set, a sharded checkpoint and its
// index) appear together or not at all: while an OutputSet lives on this
// thread, AtomicFile::commit() only finishes writing, and the set's commit()
// renames every file into place. A set destroyed uncommitted removes them all.
class OutputSet {
 public:
  OutputSet();
  ~OutputSet();
  OutputSet(const OutputSet&) = delete;
  OutputSet& operator=(const OutputSet&) = delete;
  void commit();

 private:
  friend class AtomicFile;
  struct Pending {
    std::string temp, target, path;
    bool may_replace_input;
  };
  std::vector<Pending> pending_;
  OutputSet* outer_;
};

// Convenience for small files written in one piece.
void write_file_atomically(const std::string& path, std::string_view contents, bool may_replace_input = false);

// Reads a whole (small) file; throws Error(BadInput) naming the file on failure or
// when it is larger than max_bytes.
std::string read_small_file(const std::string& path, size_t max_bytes = 256u << 20);

}  // namespace slmopt
