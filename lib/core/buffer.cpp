#include "core/buffer.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.hpp"
#include "core/file_guard.hpp"
#include "core/memory_limit.hpp"

namespace slmopt {

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw_bad_input(std::string("cannot open: ") + std::strerror(errno), path);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const bool folder = S_ISDIR(st.st_mode);
    ::close(fd);
    throw_bad_input(folder ? "is a folder, not a file" : "not a regular file (a FIFO, device or socket cannot be read as one)", path);
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->device_ = static_cast<unsigned long long>(st.st_dev);
  file->inode_ = static_cast<unsigned long long>(st.st_ino);
  note_input_file(file->device_, file->inode_);
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      throw_bad_input(std::string("cannot map: ") + std::strerror(err), path);
    }
    file->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return file;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  forget_input_file(device_, inode_);
}

std::shared_ptr<Buffer> Buffer::allocate(size_t bytes) {
  std::shared_ptr<Buffer> b(new Buffer());
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded < bytes) throw_bad_input("allocation size overflows");
  if (rounded == 0) rounded = 64;
  check_memory_request(rounded, "a tensor buffer");
  b->owned_ = static_cast<uint8_t*>(std::aligned_alloc(64, rounded));
  if (!b->owned_) throw_bad_input("out of memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(b->owned_, 0, rounded);
  note_allocated(rounded);
  b->owned_bytes_ = rounded;
  b->data_ = b->owned_;
  b->size_ = bytes;
  return b;
}

std::shared_ptr<Buffer> Buffer::view(std::shared_ptr<const MappedFile> file, size_t offset,
                                     size_t bytes) {
  if (offset > file->size() || bytes > file->size() - offset)
    throw_internal("buffer view outside its file " + file->path());
  std::shared_ptr<Buffer> b(new Buffer());
  b->data_ = file->data() ? file->data() + offset : nullptr;
  b->size_ = bytes;
  b->file_ = std::move(file);
  return b;
}

std::shared_ptr<Buffer> Buffer::slice(std::shared_ptr<const Buffer> parent, size_t offset, size_t bytes) {
  if (offset > parent->size() || bytes > parent->size() - offset) throw_internal("buffer slice outside its parent");
  std::shared_ptr<Buffer> b(new Buffer());
  b->data_ = parent->data() + offset;
  b->size_ = bytes;
  b->parent_ = std::move(parent);
  return b;
}

Buffer::~Buffer() {
  if (owned_) note_freed(owned_bytes_);
  std::free(owned_);
}

uint8_t* Buffer::mutable_data() {
  if (!owned_) throw_internal("attempt to write into a read-only (mapped or sliced) buffer");
  return owned_;
}

}  // namespace slmopt
