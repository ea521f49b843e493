#include "ota/ota_package.hpp"

#include <cstring>
#include <memory>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <zstd.h>

#include "common/blob_container.hpp"
#include "common/json_integer.hpp"
#include "common/sha256.hpp"
#include "core/atomic_file.hpp"
#include "core/buffer.hpp"
#include "core/error.hpp"
#include "core/memory_limit.hpp"
#include "core/version.hpp"

namespace slmopt::ota {
namespace {

constexpr char kMagic[8] = {'S', 'L', 'M', 'O', 'T', 'A', 0, 1};
constexpr size_t kHead = 32, kSignature = 64;
// A zstd RLE block turns 4 bytes (3 of header, 1 of data) into at most 128 KiB.
constexpr uint64_t kMaxZstdRatio = 32768;

using PKey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

PKey read_key(const std::string& path, bool is_private) {
  // Read as every other input is: a regular file only, of a bounded size.
  const std::string text = read_small_file(path, 1u << 20);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), &BIO_free);
  if (!bio) throw_internal("cannot allocate an OpenSSL memory buffer");
  EVP_PKEY* key = is_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                             : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (!key) throw_bad_input(std::string("not a PEM ") + (is_private ? "private" : "public") + " key", path);
  PKey owned(key, &EVP_PKEY_free);
  if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) throw_bad_input("the key is not an Ed25519 key", path);
  return owned;
}

uint32_t get_u32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }
uint64_t get_u64(const uint8_t* p) { return get_u32(p) | (static_cast<uint64_t>(get_u32(p + 4)) << 32); }
void put_le(uint8_t* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

std::vector<uint8_t> build_package(std::span<const uint8_t> blob, const PackageOptions& o) {
  std::vector<uint8_t> payload(ZSTD_compressBound(blob.size()));
  const size_t n = ZSTD_compress(payload.data(), payload.size(), blob.data(), blob.size(), o.zstd_level);
  if (ZSTD_isError(n)) throw_internal(std::string("zstd: ") + ZSTD_getErrorName(n));
  payload.resize(n);
  const nlohmann::ordered_json manifest = {
      {"format", "slmopt-ota"},
      {"producer", std::string("slmopt ") + kVersion},
      {"model", {{"name", o.model_name}, {"version", o.model_version}}},
      {"blob", {{"size", blob.size()}, {"sha256", to_hex(sha256(blob.data(), blob.size()))}}},
      {"payload", {{"compression", "zstd"}, {"size", payload.size()}, {"sha256", to_hex(sha256(payload.data(), payload.size()))}}},
      {"signature", o.private_key_pem.empty() ? "none" : "ed25519"}};
  const std::string text = manifest.dump();
  std::vector<uint8_t> signature;
  if (!o.private_key_pem.empty()) {
    PKey key = read_key(o.private_key_pem, true);
    MdCtx ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    size_t length = kSignature;
    signature.resize(kSignature);
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
        EVP_DigestSign(ctx.get(), signature.data(), &length, reinterpret_cast<const uint8_t*>(text.data()), text.size()) != 1 ||
        length != kSignature)
      throw_internal("Ed25519 signing failed");
  }
  std::vector<uint8_t> out(kHead + text.size() + signature.size() + payload.size(), 0);
  uint8_t* p = out.data();
  std::memcpy(p, kMagic, 8);
  put_le(p + 8, text.size(), 4);
  put_le(p + 12, signature.size(), 4);
  put_le(p + 16, payload.size(), 8);
  std::memcpy(p + kHead, text.data(), text.size());
  if (!signature.empty()) std::memcpy(p + kHead + text.size(), signature.data(), signature.size());
  std::memcpy(p + kHead + text.size() + signature.size(), payload.data(), payload.size());
  return out;
}

bool is_package_file(const std::string& path) { return container::has_magic(path, kMagic); }

PackageCheck check_package(const std::string& path, const std::string& public_key_pem) {
  const auto file = MappedFile::open(path);
  const uint8_t* p = file->data();
  const uint64_t size = file->size();
  if (size < kHead || std::memcmp(p, kMagic, 8) != 0) throw_bad_input("not an slmopt OTA package (bad magic)", path);
  const uint64_t m = get_u32(p + 8), s = get_u32(p + 12), payload = get_u64(p + 16);
  if (get_u64(p + 24) != 0 || (s != 0 && s != kSignature)) throw_bad_input("malformed package header", path);
  if (m > size - kHead || s > size - kHead - m || payload != size - kHead - m - s)
    throw_bad_input("truncated: the package is not as long as its header says", path);
  const uint8_t* text = p + kHead;
  const uint8_t* sig = text + m;
  const uint8_t* frame = sig + s;
  PackageCheck check;
  check.manifest = nlohmann::json::parse(text, text + m, nullptr, false);
  if (check.manifest.is_discarded() || !check.manifest.is_object()) throw_bad_input("the manifest is not JSON", path);
  check.signed_package = s != 0;
  if (!public_key_pem.empty()) {
    if (!check.signed_package) throw_bad_input("the package is not signed, but a public key was given", path);
    PKey key = read_key(public_key_pem, false);
    MdCtx ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
        EVP_DigestVerify(ctx.get(), sig, s, text, m) != 1)
      throw_bad_input("signature mismatch: the package was not signed by this key or was modified", path);
    check.signature_checked = true;
  }
  try {
    const auto& b = check.manifest.at("blob");
    const auto& pl = check.manifest.at("payload");
    if (pl.at("compression").get<std::string>() != "zstd") throw_bad_input("unknown payload compression", path);
    if (json_integer<uint64_t>(pl.at("size")) != payload || pl.at("sha256").get<std::string>() != to_hex(sha256(frame, payload)))
      throw_bad_input("payload SHA-256 mismatch", path);
    const uint64_t blob_size = json_integer<uint64_t>(b.at("size"));
    const unsigned long long content = ZSTD_getFrameContentSize(frame, payload);
    if (content == ZSTD_CONTENTSIZE_ERROR || content == ZSTD_CONTENTSIZE_UNKNOWN || content != blob_size)
      throw_bad_input("payload is not a zstd frame of the blob's size", path);
    // zstd's frame header may claim any size; the payload must be able to
    // produce it (zstd cannot beat 32 KiB per input byte) and it must fit.
    if (blob_size / kMaxZstdRatio > payload) throw_bad_input("payload is too small to decompress to the blob's size", path);
    check_memory_request(blob_size, "the decompressed blob", path);
    check.blob.resize(blob_size);
    const size_t n = ZSTD_decompress(check.blob.data(), check.blob.size(), frame, payload);
    if (ZSTD_isError(n) || n != blob_size) throw_bad_input("payload does not decompress", path);
    if (b.at("sha256").get<std::string>() != to_hex(sha256(check.blob.data(), check.blob.size())))
      throw_bad_input("blob SHA-256 mismatch", path);
  } catch (const nlohmann::json::exception& e) {
    throw_bad_input(std::string("malformed manifest: ") + e.what(), path);
  }
  return check;
}

}  // namespace slmopt::ota
