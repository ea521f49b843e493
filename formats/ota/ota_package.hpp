// The OTA package: a blob compressed with zstd behind a JSON manifest, signed
// with Ed25519 (OpenSSL) when a key is given. docs/blob-format.md, "OTA package".
//
//   bytes 0-7    magic "SLMOTA\0\1"
//   bytes 8-11   manifest length M (u32 LE)
//   bytes 12-15  signature length S (u32 LE): 0 or 64
//   bytes 16-23  payload length P (u64 LE)
//   bytes 24-31  zero
//   then         M bytes manifest (UTF-8 JSON), S bytes Ed25519 signature of
//                the manifest, P bytes zstd frame holding the blob.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace slmopt::ota {

struct PackageOptions {
  std::string model_name, model_version;
  std::string private_key_pem;  // path; empty: unsigned
  int zstd_level = 19;
};

std::vector<uint8_t> build_package(std::span<const uint8_t> blob, const PackageOptions& options);

bool is_package_file(const std::string& path);

struct PackageCheck {
  nlohmann::json manifest;
  bool signed_package = false;
  bool signature_checked = false;  // a public key was given and the signature matched
  std::vector<uint8_t> blob;       // the exact bytes that were packed
};

// Checks the manifest, the payload's SHA-256, the decompressed blob's size and
// SHA-256 and, given a public key (PEM path), the signature. Throws
// Error(BadInput) naming the file and the first mismatch.
PackageCheck check_package(const std::string& path, const std::string& public_key_pem);

}  // namespace slmopt::ota
