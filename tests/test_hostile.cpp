// Hand-built attacks that the fuzzers' invariant (load or slmopt::Error)
// cannot judge by itself: decompression bombs and sizes past the memory limit
// must be refused *before* the allocation, with a message that says why.
// (Each reader's own malformed-input cases live beside its other tests.)
#include <catch2/catch.hpp>

#include <zstd.h>

#include <nlohmann/json.hpp>

#include "blob/blob_io.hpp"
#include "calib/npy.hpp"
#include "common/sha256.hpp"
#include "config/rule_file.hpp"
#include "core/memory_limit.hpp"
#include "ota/ota_package.hpp"
#include "slm/slm_io.hpp"
#include "test_util.hpp"

using namespace slmopt;

namespace {

std::string le(uint64_t v, int n) {
  std::string b;
  for (int i = 0; i < n; ++i) b.push_back(static_cast<char>(v >> (8 * i)));
  return b;
}

// An unsigned OTA package around `payload` whose manifest claims `blob_size`;
// the payload's digest is right, so only the size checks stand in the way.
std::string forged_package(const std::string& payload, uint64_t blob_size) {
  const nlohmann::json manifest = {
      {"blob", {{"size", blob_size}, {"sha256", std::string(64, '0')}}},
      {"payload",
       {{"compression", "zstd"}, {"size", payload.size()}, {"sha256", to_hex(sha256(payload.data(), payload.size()))}}}};
  const std::string text = manifest.dump();
  return std::string("SLMOTA\0\1", 8) + le(text.size(), 4) + le(0, 4) + le(payload.size(), 8) + le(0, 8) + text + payload;
}

std::string package_error(const test::TempDir& tmp, const std::string& bytes) {
  test::write_bytes(tmp.file("bomb.ota"), bytes);
  try {
    ota::check_package(tmp.file("bomb.ota"), "");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// Restores the default memory limit however the test ends.
struct MemoryLimit {
  explicit MemoryLimit(uint64_t bytes) { set_memory_limit(bytes); }
  ~MemoryLimit() { set_memory_limit(0); }
};

}  // namespace

TEST_CASE("zstd bombs in OTA packages are refused before decompression") {
  test::TempDir tmp;
  const std::string f = tmp.file("bomb.ota") + ": ";

  // A frame header claiming 1 TiB (single segment, 8-byte content size) and
  // one RLE block: a 16-byte payload cannot produce that much.
  const std::string frame = le(0xFD2FB528u, 4) + "\xE0" + le(uint64_t{1} << 40, 8) + le(1 | (1 << 1) | (8 << 3), 3) + "x";
  CHECK(package_error(tmp, forged_package(frame, uint64_t{1} << 40)) ==
        f + "payload is too small to decompress to the blob's size");

  // An honest frame whose blob is larger than the memory limit.
  std::string blob(2 << 20, '\0');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i % 251);
  std::string payload(ZSTD_compressBound(blob.size()), '\0');
  payload.resize(ZSTD_compress(payload.data(), payload.size(), blob.data(), blob.size(), 3));
  MemoryLimit limit(1 << 20);
  CHECK(package_error(tmp, forged_package(payload, blob.size())) ==
        f + "the decompressed blob needs 2097152 bytes (2.00 MiB) with 0 B already in use: over the memory limit of "
            "1.00 MiB (--memory-limit or SLMOPT_MEMORY_LIMIT raise it)");
}

TEST_CASE("a tensor larger than the memory limit fails cleanly before allocating") {
  test::TempDir tmp;
  calib::write_npy(tmp.file("big.npy"), Tensor(DType::F32, {512, 1024}));  // 2 MiB
  {
    MemoryLimit limit(1 << 20);
    CHECK_THROWS_WITH(calib::read_npy(tmp.file("big.npy")), Catch::Contains("over the memory limit of 1.00 MiB"));
    CHECK_THROWS_WITH(Tensor(DType::F32, {int64_t{1} << 40}), Catch::Contains("needs 4398046511104 bytes (4.00 TiB)"));
    CHECK(memory_in_use() == 0);  // nothing was allocated on the way to the errors
  }
  CHECK(calib::read_npy(tmp.file("big.npy")).numel() == 512 * 1024);
  CHECK(memory_in_use() == 0);  // and what was allocated is accounted as freed
}

TEST_CASE("slmopt --memory-limit: one error line, exit 2, nothing written") {
  test::TempDir tmp;
  const std::string model = test::test_data("stories260K/model.safetensors");
  auto r = test::run_slmopt("quantize '" + model + "' -o '" + tmp.file("q.slm") + "' --bits '*=4' --memory-limit 100KiB");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::StartsWith("slmopt: error: ") && Catch::Contains("over the memory limit of 100.00 KiB"));
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(tmp.entries().empty());
  r = test::run_slmopt("quantize '" + model + "' -o '" + tmp.file("q.slm") + "' --bits '*=4' --memory-limit lots");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--memory-limit expects a size such as 4MiB"));
  r = test::run_slmopt("quantize '" + model + "' -o '" + tmp.file("q.slm") + "' --bits '*=4'", "SLMOPT_MEMORY_LIMIT=plenty");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("SLMOPT_MEMORY_LIMIT expects a size such as 2GiB or 512M, not 'plenty'"));
  CHECK(tmp.entries().empty());
}

TEST_CASE("duplicate tensor names in .slm files and blobs are refused") {
  test::TempDir tmp;
  Model m = test::single_node_model("MatMul", test::gaussian_tensor({4, 4}, 1), {1, 4});
  m.graph.initializers.push_back(m.graph.initializers[0]);  // our writers copy what they are given
  slm::write_slm(m, tmp.file("twice.slm"));
  CHECK_THROWS_WITH(slm::read_slm(tmp.file("twice.slm")), tmp.file("twice.slm") + ": tensor 'w' appears twice");
  const auto bytes = blob::build_blob(m, {});
  test::write_bytes(tmp.file("twice.bin"), std::string(bytes.begin(), bytes.end()));
  CHECK_THROWS_WITH(blob::BlobFile(tmp.file("twice.bin")).model(), tmp.file("twice.bin") + ": tensor 'w' appears twice");
}

TEST_CASE("a rule file nested thousands of levels deep is refused with its line, not a stack overflow") {
  const std::string flow = "rules: " + std::string(100000, '[') + std::string(100000, ']') + "\n";
  CHECK_THROWS_WITH(config::parse_rule_file(flow, "deep.yaml"), Catch::StartsWith("deep.yaml: line 1: nested too deeply"));
  std::string block = "rules:\n";
  for (int i = 0; i < 3000; ++i) block += std::string(static_cast<size_t>(i), ' ') + "-\n";
  CHECK_THROWS_WITH(config::parse_rule_file(block, "deep.yaml"), Catch::Contains("nested too deeply"));
}
