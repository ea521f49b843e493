// SHA-256 (OpenSSL) of blobs and packages, and its hex form.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace slmopt {

using Sha256 = std::array<uint8_t, 32>;

Sha256 sha256(const void* data, size_t size);

// SHA-256 of bytes that arrive in pieces (a file written as a stream).
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void update(const void* data, size_t size);
  Sha256 finish();

 private:
  ::evp_md_ctx_st* ctx_;
};

std::string to_hex(const uint8_t* bytes, size_t size);
inline std::string to_hex(const Sha256& digest) { return to_hex(digest.data(), digest.size()); }
// SHA-256 of a whole file (mapped), as hex.
std::string sha256_file_hex(const std::string& path);

}  // namespace slmopt
