#include "common/sha256.hpp"

#include <openssl/evp.h>

#include "core/buffer.hpp"
#include "core/error.hpp"

namespace slmopt {

Sha256 sha256(const void* data, size_t size) {
  Sha256 digest{};
  unsigned int length = 0;
  if (!EVP_Digest(data, size, digest.data(), &length, EVP_sha256(), nullptr) || length != digest.size())
    throw_internal("SHA-256 failed");
  return digest;
}

Sha256Stream::Sha256Stream() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx_);
    throw_internal("SHA-256 failed");
  }
}

Sha256Stream::~Sha256Stream() { EVP_MD_CTX_free(ctx_); }

void Sha256Stream::update(const void* data, size_t size) {
  if (size && EVP_DigestUpdate(ctx_, data, size) != 1) throw_internal("SHA-256 failed");
}

Sha256 Sha256Stream::finish() {
  Sha256 digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_, digest.data(), &length) != 1 || length != digest.size()) throw_internal("SHA-256 failed");
  return digest;
}

std::string to_hex(const uint8_t* bytes, size_t size) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  s.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    s += digits[bytes[i] >> 4];
    s += digits[bytes[i] & 15];
  }
  return s;
}

std::string sha256_file_hex(const std::string& path) {
  const auto file = MappedFile::open(path);
  return to_hex(sha256(file->data(), file->size()));
}

}  // namespace slmopt
