#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.hpp"

using namespace slmopt;
namespace fs = std::filesystem;
using nlohmann::json;

TEST_CASE("inspect matches what ONNX's Python API reports for the real models") {
  auto dir = test::real_models_dir();
  auto facts_file = test::model_facts_file();
  if (!dir || !facts_file) return;
  json facts = json::parse(test::read_bytes(facts_file->string()));
  REQUIRE(facts.size() >= 9);
  for (auto it = facts.begin(); it != facts.end(); ++it) {
    INFO(it.key());
    auto r = test::run_slmopt("inspect --json '" + (*dir / it.key()).string() + "'");
    REQUIRE(r.exit_code == 0);
    json got = json::parse(r.out);
    const json& want = *it;
    CHECK(got["totals"]["params"] == want["params"]);
    CHECK(got["totals"]["bytes"] == want["bytes"]);
    CHECK(got["nodes"] == want["nodes"]);
    CHECK(got["subgraph_nodes"] == want["subgraph_nodes"]);
    CHECK(got["ops"] == want["ops"]);
    CHECK(got["opsets"] == want["opsets"]);
    REQUIRE(got["tensors"].size() == want["initializers"].size());
    for (const auto& t : got["tensors"]) CHECK(want["initializers"][t["name"].get<std::string>()] == t["params"]);
    REQUIRE(got["inputs"].size() == want["inputs"].size());
    for (size_t i = 0; i < got["inputs"].size(); ++i) {
      CHECK(got["inputs"][i]["name"] == want["inputs"][i]["name"]);
      CHECK(got["inputs"][i]["shape"] == want["inputs"][i]["shape"]);
    }
    CHECK(got["outputs"].size() == want["outputs"].size());
  }
  // The figure the issue names.
  CHECK(facts["embedding_model.onnx"]["params"] == 328137);
}

TEST_CASE("inspect prints a readable table and the quantized size estimates") {
  auto r = test::run_slmopt("inspect " + test::test_data("stories260K"));
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("format     safetensors"));
  CHECK_THAT(r.out, Catch::Contains("arch       llama (LlamaForCausalLM): 5 layers, hidden 64, 8 heads / 4 kv"));
  CHECK_THAT(r.out, Catch::Contains("model.embed_tokens.weight"));
  // 47 weights (260,032 parameters) and the graph's constants.
  CHECK_THAT(r.out, Catch::Contains("parameters 260,061 in 63 tensors"));
  CHECK_THAT(r.out, Catch::Contains("4 bpw: 129.57 KiB"));
  auto j = test::run_slmopt("inspect --json " + test::test_data("stories260K/model.safetensors"));
  REQUIRE(j.exit_code == 0);
  json doc = json::parse(j.out);
  CHECK(doc["totals"]["params"] == 260061);
  CHECK(doc["size_estimates"][0]["bits_per_weight"] == 8);
  // The 259,328 parameters of matrices at a byte each; norms and constants as stored.
  CHECK(doc["totals"]["quantizable_params"] == 259328);
  CHECK(doc["size_estimates"][0]["bytes"] == 259328 + (doc["totals"]["bytes"].get<int64_t>() - 259328 * 4));
}

TEST_CASE("bad input: one error line naming the file, exit code 2, no output left behind") {
  test::TempDir tmp;
  auto missing = test::run_slmopt("inspect " + tmp.file("nope.onnx"));
  CHECK(missing.exit_code == 2);
  CHECK(missing.err == "slmopt: error: " + tmp.file("nope.onnx") + ": cannot open: No such file or directory\n");

  test::write_bytes(tmp.file("big.safetensors"), std::string("\0\0\0\0\0\0\0\x10{}", 10));
  auto bomb = test::run_slmopt("convert " + tmp.file("big.safetensors") + " -o " + tmp.file("out.safetensors"));
  CHECK(bomb.exit_code == 2);
  CHECK(bomb.err == "slmopt: error: " + tmp.file("big.safetensors") +
                        ": header length 1152921504606846976 exceeds the 100000000-byte limit\n");

  // A tensor whose data runs past the end of the file.
  std::string header = R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  std::string len(8, '\0');
  len[0] = static_cast<char>(header.size());
  test::write_bytes(tmp.file("short.safetensors"), len + header + std::string(8, '\0'));
  auto past = test::run_slmopt("convert " + tmp.file("short.safetensors") + " -o " + tmp.file("out.safetensors"));
  CHECK(past.exit_code == 2);
  CHECK_THAT(past.err, Catch::EndsWith("tensor 'w' data [0, 16) runs past the end of the data buffer (8 bytes)\n"));

  // An ONNX model whose external data file is missing.
  fs::copy_file(test::test_data("stories260K/model.safetensors"), tmp.file("w.safetensors"));
  auto conv = test::run_slmopt("convert " + tmp.file("w.safetensors") + " -o " + tmp.file("x.onnx"));
  CHECK(conv.exit_code == 2);  // safetensors has no graph to put in an ONNX file
  CHECK_THAT(conv.err, Catch::Contains("an ONNX output needs a graph; these weights have none"));

  CHECK(tmp.entries() == std::vector<std::string>{"big.safetensors", "short.safetensors", "w.safetensors"});

  auto usage = test::run_slmopt("inspect");
  CHECK(usage.exit_code == 2);
  auto unknown = test::run_slmopt("frobnicate");
  CHECK(unknown.exit_code == 2);
  auto help = test::run_slmopt("--help");
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.out, Catch::Contains("inspect"));
}

TEST_CASE("convert moves ONNX weights to external data and back, losslessly") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  test::TempDir tmp;
  std::string src = (*dir / "embedding_model.onnx").string();
  auto ext = test::run_slmopt("convert --quiet " + src + " -o " + tmp.file("e.onnx") + " --external always");
  REQUIRE(ext.exit_code == 0);
  CHECK(fs::exists(tmp.file("e.onnx.data")));
  auto back = test::run_slmopt("convert --quiet " + tmp.file("e.onnx") + " -o " + tmp.file("i.onnx") + " --external never");
  REQUIRE(back.exit_code == 0);
  auto a = json::parse(test::run_slmopt("inspect --json " + src).out);
  auto b = json::parse(test::run_slmopt("inspect --json " + tmp.file("i.onnx")).out);
  CHECK(a["tensors"] == b["tensors"]);

  // Removing the data file makes the external model a clear error.
  fs::remove(tmp.file("e.onnx.data"));
  auto gone = test::run_slmopt("inspect " + tmp.file("e.onnx"));
  CHECK(gone.exit_code == 2);
  CHECK_THAT(gone.err, Catch::StartsWith("slmopt: error: " + tmp.file("e.onnx") + ": graph 'tf2onnx': tensor "));
  CHECK_THAT(gone.err, Catch::EndsWith("external data file 'e.onnx.data' does not exist\n"));
}

TEST_CASE("convert writes a quantized .slm as ONNX, the export quantize -o x.onnx uses") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  const std::string model = (*dir / "alexa_v0.1.onnx").string();
  test::TempDir tmp;
  auto r = test::run_slmopt("quantize '" + model + "' -o '" + tmp.file("q.slm") + "' --bits '*=int8-ch' -q");
  REQUIRE(r.exit_code == 0);
  r = test::run_slmopt("convert '" + tmp.file("q.slm") + "' -o '" + tmp.file("q.onnx") + "'");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  r = test::run_slmopt("inspect --json '" + tmp.file("q.onnx") + "'");
  REQUIRE(r.exit_code == 0);
  CHECK(json::parse(r.out)["ops"].contains("DequantizeLinear"));
  // The export is exact: the two files compute the same outputs.
  r = test::run_slmopt("eval --reference '" + tmp.file("q.slm") + "' --candidate '" + tmp.file("q.onnx") +
                       "' --random 4 --gate 'max_abs<=1e-7'");
  INFO(r.err);
  CHECK(r.exit_code == 0);
}
