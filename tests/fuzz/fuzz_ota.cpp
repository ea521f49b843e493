// OTA packages: header, manifest JSON, signature slot and the zstd payload.
// The manifest's payload SHA-256 is recomputed (when there is a manifest to
// hold it) so the fuzzer reaches the decompression and its size checks.
#include <nlohmann/json.hpp>

#include "blob_reseal.hpp"
#include "fuzz_common.hpp"
#include "ota/ota_package.hpp"

namespace {

constexpr size_t kHead = 32;

void put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Rewrites payload.sha256 and payload.size to match the payload; leaves the
// bytes alone when the header or manifest is too broken to say where it is.
std::vector<uint8_t> fix_payload_digest(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  if (size < kHead) return bytes;
  const uint64_t m = slmopt::fuzz::le32(data + 8), s = slmopt::fuzz::le32(data + 12);
  if (m > size - kHead || s > size - kHead - m) return bytes;
  auto manifest = nlohmann::json::parse(data + kHead, data + kHead + m, nullptr, false);
  if (manifest.is_discarded() || !manifest.is_object() || !manifest.contains("payload") || !manifest["payload"].is_object())
    return bytes;
  const uint8_t* payload = data + kHead + m + s;
  const uint64_t payload_size = size - kHead - m - s;
  manifest["payload"]["size"] = payload_size;
  manifest["payload"]["sha256"] = slmopt::to_hex(slmopt::sha256(payload, payload_size));
  const std::string text = manifest.dump();
  std::vector<uint8_t> out(data, data + kHead);
  slmopt::fuzz::put32(&out[8], static_cast<uint32_t>(text.size()));
  put64(&out[16], payload_size);
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), data + kHead + m, data + size);
  return out;
}

}  // namespace

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  const auto bytes = fix_payload_digest(data, size);
  const std::string path = slmopt::fuzz::write_scratch("model.ota", bytes.data(), bytes.size());
  slmopt::fuzz::expect_load_or_error([&] { (void)slmopt::ota::check_package(path, ""); });
}
