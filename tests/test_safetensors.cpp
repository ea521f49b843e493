#include <catch2/catch.hpp>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/model_stats.hpp"
#include "safetensors/safetensors_io.hpp"
#include "test_util.hpp"

using namespace slmopt;
namespace fs = std::filesystem;

namespace {

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<size_t>(i)] = static_cast<char>(v >> (8 * i));
  return s;
}

// A safetensors file from a header text and a data buffer, as an attacker would write it.
void make_file(const std::string& path, const std::string& header, const std::string& data) {
  test::write_bytes(path, u64_le(header.size()) + header + data);
}

std::string read_error(const std::string& path) {
  try {
    safetensors::read(path);
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::BadInput);
    return e.what();
  }
  return "no error";
}

bool same_tensors(const safetensors::Contents& a, const safetensors::Contents& b) {
  if (a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i)
    if (a.tensors[i].name != b.tensors[i].name || !a.tensors[i].tensor.bit_equal(b.tensors[i].tensor)) return false;
  return true;
}

}  // namespace

TEST_CASE("the real stories260K checkpoint reads zero-copy and round-trips bit for bit") {
  test::TempDir tmp;
  auto c = safetensors::read(test::test_data("stories260K/model.safetensors"));
  REQUIRE(c.tensors.size() == 47);
  int64_t params = 0;
  for (const auto& t : c.tensors) {
    params += t.tensor.numel();
    CHECK(t.tensor.is_mapped());
  }
  CHECK(params == 260032);
  CHECK(c.tensors[0].name == "model.embed_tokens.weight");
  CHECK(c.tensors[0].tensor.shape() == std::vector<int64_t>{512, 64});
  REQUIRE(c.metadata.size() == 2);
  CHECK(c.metadata[0] == std::pair<std::string, std::string>{"format", "pt"});
  CHECK(c.metadata[1].second.find("karpathy/tinyllamas") != std::string::npos);

  safetensors::write_file(tmp.file("rt.safetensors"), c.tensors, c.metadata);
  auto back = safetensors::read(tmp.file("rt.safetensors"));
  CHECK(same_tensors(c, back));
  CHECK(back.metadata == c.metadata);
  // Deterministic bytes, 8-byte aligned data.
  safetensors::write_file(tmp.file("rt2.safetensors"), back.tensors, back.metadata);
  std::string bytes = test::read_bytes(tmp.file("rt.safetensors"));
  CHECK(bytes == test::read_bytes(tmp.file("rt2.safetensors")));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
  CHECK(header_len % 8 == 0);
}

TEST_CASE("every safetensors dtype round-trips, with metadata and provenance") {
  test::TempDir tmp;
  Model m;
  m.graph.name = "all";
  uint32_t seed = 100;
  for (int i = 0; i < static_cast<int>(DType::Count_); ++i) {
    auto t = static_cast<DType>(i);
    if (!traits(t).safetensors_name) continue;
    m.graph.initializers.push_back({std::string("t.") + dtype_name(t), test::random_tensor(t, {2, 3, 5}, ++seed), ""});
  }
  m.graph.initializers.push_back({"scalar", Tensor::from_values<float>(DType::F32, {}, {3.5f}), ""});
  m.graph.initializers.push_back({"empty", Tensor(DType::I32, {0}), ""});
  m.metadata = {{"format", "pt"}};
  m.provenance = {{"quantize", "--bits *=4", "0.1.0"}};
  safetensors::write_model(m, tmp.file("all.safetensors"));
  Model back = safetensors::read_model(tmp.file("all.safetensors"));
  REQUIRE(back.graph.initializers.size() == m.graph.initializers.size());
  for (const auto& t : m.graph.initializers) {
    const auto* b = back.graph.find_initializer(t.name);
    REQUIRE(b);
    CHECK(b->tensor.bit_equal(t.tensor));
  }
  CHECK(back.metadata == m.metadata);
  CHECK(back.provenance == m.provenance);

  m.graph.initializers.push_back({"s", Tensor::from_strings({1}, {"x"}), ""});
  CHECK_THROWS_WITH(safetensors::write_model(m, tmp.file("bad.safetensors")),
                    Catch::Contains("bad.safetensors: tensor 's': safetensors cannot store string tensors"));
  CHECK_FALSE(fs::exists(tmp.file("bad.safetensors")));
  CHECK(tmp.entries() == std::vector<std::string>{"all.safetensors"});
}

TEST_CASE("sharded checkpoints write an index and read back in order") {
  test::TempDir tmp;
  auto c = safetensors::read(test::test_data("stories260K/model.safetensors"));
  int shards = safetensors::write_sharded(tmp.file("sharded"), c.tensors, c.metadata, 300'000);
  CHECK(shards == 4);
  auto index = nlohmann::json::parse(test::read_bytes(tmp.file("sharded/model.safetensors.index.json")));
  CHECK(index["metadata"]["total_size"] == 1040128);
  CHECK(index["weight_map"].size() == 47);
  CHECK(index["weight_map"]["model.embed_tokens.weight"] == "model-00001-of-00004.safetensors");
  for (const auto& path : {tmp.file("sharded"), tmp.file("sharded/model.safetensors.index.json")}) {
    auto back = safetensors::read(path);
    CHECK(same_tensors(c, back));
  }
}

TEST_CASE("hostile safetensors files are refused with a clear error") {
  test::TempDir tmp;
  const std::string f = tmp.file("bad.safetensors");
  const std::string ok_entry = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

  test::write_bytes(f, "abc");
  CHECK(read_error(f) == f + ": file is too short for a safetensors header (3 bytes)");
  test::write_bytes(f, u64_le(uint64_t{1} << 60) + "{}");
  CHECK(read_error(f) == f + ": header length 1152921504606846976 exceeds the 100000000-byte limit");
  test::write_bytes(f, u64_le(1000) + "{}");
  CHECK(read_error(f) == f + ": header length 1000 runs past the end of the file (10 bytes)");
  make_file(f, "[1,2]", "");
  CHECK(read_error(f) == f + ": header does not start with a JSON object");
  make_file(f, "{\"a\":", "");
  CHECK(read_error(f) == f + ": header is not valid JSON");
  make_file(f, "{" + ok_entry + "," + ok_entry + "}", std::string(8, '\0'));
  CHECK(read_error(f) == f + ": header names 'a' twice");
  make_file(f, R"({"a":{"dtype":"C64","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0'));
  CHECK(read_error(f) == f + ": tensor 'a': unsupported dtype 'C64'");
  make_file(f, R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, '\0'));
  CHECK(read_error(f) == f + ": tensor 'a': shape entries must be non-negative integers");
  make_file(f, R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", std::string(8, '\0'));
  CHECK(read_error(f) == f + ": tensor 'a': element count overflows 64-bit integers");
  make_file(f, R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0'));
  CHECK(read_error(f) == f + ": tensor 'a': data_offsets span 8 bytes, shape [3] of f32 needs 12");
  make_file(f, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", std::string(8, '\0'));
  CHECK(read_error(f) == f + ": tensor 'a': data_offsets end before they begin");
  make_file(f, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, '\0'));
  CHECK(read_error(f) == f + ": tensor 'a' data [0, 8) runs past the end of the data buffer (4 bytes)");
  make_file(f, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(12, '\0'));
  CHECK(read_error(f) == f + ": data buffer holds 12 bytes, tensors cover 8");
  make_file(f, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0'));
  CHECK(read_error(f) == f + ": tensor 'a' starts at byte 4 of the data buffer, expected 0 (hole)");
  make_file(f, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            std::string(8, '\0'));
  CHECK(read_error(f) == f + ": tensor 'b' starts at byte 4 of the data buffer, expected 8 (overlap)");
  make_file(f, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})", std::string(8, '\0'));
  CHECK(read_error(f) == f + ": tensor 'a': data_offsets span 18446744073709551615 bytes, shape [2] of f32 needs 8");
  make_file(f, R"({"__metadata__":{"k":1}})", "");
  CHECK(read_error(f) == f + ": __metadata__ value 'k' is not a string");
  make_file(f, R"({"a":{"dtype":"F32","shape":[2]}})", "");
  CHECK(read_error(f) == f + ": tensor 'a': 'data_offsets' must be two non-negative integers");

  // Truncating a valid file anywhere gives an error, never a crash.
  std::string good = test::read_bytes(test::test_data("stories260K/model.safetensors"));
  for (size_t cut : {size_t{0}, size_t{7}, size_t{8}, size_t{100}, size_t{5392}, good.size() - 1}) {
    test::write_bytes(f, good.substr(0, cut));
    CHECK(read_error(f) != "no error");
  }
}

TEST_CASE("hostile sharded indexes are refused") {
  test::TempDir tmp;
  auto c = safetensors::read(test::test_data("stories260K/model.safetensors"));
  safetensors::write_sharded(tmp.file("m"), c.tensors, {}, 300'000);
  const std::string index = tmp.file("m/model.safetensors.index.json");
  auto j = nlohmann::json::parse(test::read_bytes(index));

  auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
    auto copy = j;
    edit(copy);
    test::write_bytes(index, copy.dump());
    return read_error(index);
  };
  CHECK(with([](auto& x) { x["weight_map"]["model.norm.weight"] = "../../etc/passwd"; }) ==
        index + ": shard name '../../etc/passwd' must be a plain file name in the index's folder");
  CHECK(with([](auto& x) { x["weight_map"]["ghost"] = "model-00001-of-00004.safetensors"; }) ==
        index + ": tensor 'ghost' is missing from shard 'model-00001-of-00004.safetensors'");
  CHECK_THAT(with([](auto& x) { x["weight_map"].erase("model.norm.weight"); }),
             Catch::Contains("tensor 'model.norm.weight' is not listed in the index"));
  CHECK_THAT(with([](auto& x) { x["weight_map"]["model.embed_tokens.weight"] = "model-00002-of-00004.safetensors"; }),
             Catch::Contains("tensor 'model.embed_tokens.weight' is listed in shard 'model-00002-of-00004.safetensors'"));
  CHECK(with([](auto& x) { x["weight_map"]["a"] = "missing.safetensors"; }) ==
        index + ": shard file 'missing.safetensors' does not exist");
  // A shard that is a symbolic link out of the folder, as ONNX external data may not be.
  test::write_bytes(tmp.file("outside.safetensors"), test::read_bytes(tmp.file("m/model-00004-of-00004.safetensors")));
  std::filesystem::create_symlink(tmp.file("outside.safetensors"), tmp.file("m/linked.safetensors"));
  CHECK(with([](auto& x) { x["weight_map"]["model.norm.weight"] = "linked.safetensors"; }) ==
        index + ": shard location 'linked.safetensors' resolves outside the model's folder");
  CHECK(with([](auto& x) { x.erase("weight_map"); }) == index + ": missing object 'weight_map'");
  // A tensor named twice with two shards: which one is meant is ambiguous.
  test::write_bytes(index, R"({"weight_map": {"model.norm.weight": "model-00001-of-00004.safetensors",
                                                "model.norm.weight": "model-00004-of-00004.safetensors"}})");
  CHECK(read_error(index) == index + ": index names 'model.norm.weight' twice");
}
