// Models from exporters our other tests do not use (scripts/fetch-testdata.sh):
// PaddlePaddle's PP-OCR (every weight a Constant node, opset 9-11), Silero VAD
// v5 (spox: Constant weights inside If branches) and legacy (PyTorch 1.12:
// weights as If-body initializers). Every weight is found, the normalized
// model computes the same bits, and a pass that changes nothing fails.
#include <catch2/catch.hpp>

#include <cstring>
#include <nlohmann/json.hpp>

#include "calib/npy.hpp"
#include "core/weight_uses.hpp"
#include "eval/gate.hpp"
#include "model_io.hpp"
#include "runtime/constants.hpp"
#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct Case {
  const char* file;
  int64_t weights;  // float tensors MatMul/Gemm/Conv/ConvTranspose/LSTM read (ONNX's Python API agrees)
  int64_t params;
};

// Counted with ONNX's Python API: float constants (initializers, Constant
// nodes, in any graph) reaching input 1 of Conv/ConvTranspose/MatMul/Gemm or
// W/R of LSTM, directly or through one Cast/Transpose/Reshape/Squeeze/Unsqueeze.
const Case kCases[] = {
    {"ch_ppocr_mobile_v2.0_cls_infer.onnx", 54, 124072},
    {"ch_PP-OCRv4_det_infer.onnx", 64, 1164320},
    {"ch_PP-OCRv4_rec_infer.onnx", 47, 2669672},
    {"silero_vad_v5.onnx", 12, 280320},
    {"silero_vad_legacy.onnx", 52, 439362},
};

std::map<std::string, Tensor> feeds_for(const std::string& file) {
  const auto uniform = [](std::vector<int64_t> shape, uint32_t seed) {
    Tensor t = test::gaussian_tensor(std::move(shape), seed, 0.5f);
    return t;
  };
  if (file.starts_with("silero")) {
    Tensor audio(DType::F32, {1, 512});
    for (int64_t i = 0; i < 512; ++i)
      audio.mutable_data<float>()[i] = 0.3f * std::sin(2.0f * 3.14159265f * 440.0f * static_cast<float>(i) / 16000.0f);
    std::map<std::string, Tensor> f{{"input", audio}, {"sr", Tensor::from_values<int64_t>(DType::I64, {}, {16000})}};
    if (file == "silero_vad_v5.onnx") {
      f["state"] = Tensor(DType::F32, {2, 1, 128});
    } else {
      f["h"] = Tensor(DType::F32, {2, 1, 64});
      f["c"] = Tensor(DType::F32, {2, 1, 64});
    }
    for (auto& [name, t] : f)
      if (name == "state" || name == "h" || name == "c") std::memset(t.mutable_bytes(), 0, t.nbytes());
    return f;
  }
  if (file.find("det") != std::string::npos) return {{"x", uniform({1, 3, 96, 96}, 1)}};
  if (file.find("rec") != std::string::npos) return {{"x", uniform({1, 3, 48, 160}, 2)}};
  return {{"x", uniform({1, 3, 48, 192}, 3)}};
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}

}  // namespace

TEST_CASE("weights in Constant nodes and If bodies are found, and the model computes the same bits") {
  auto dir = test::more_models_dir();
  if (!dir) return;
  for (const Case& c : kCases) {
    INFO(c.file);
    const Model original = load_model((*dir / c.file).string());
    Model normalized = original;
    const auto report = runtime::constants_to_initializers(normalized);
    CHECK(report.changed());
    int64_t weights = 0, params = 0;
    for (const auto& [name, use] : find_weight_uses(normalized.graph)) {
      const Tensor& t = normalized.graph.find_initializer(name)->tensor;
      if (!is_float(t.dtype())) continue;
      ++weights;
      params += t.numel();
    }
    CHECK(weights == c.weights);
    CHECK(params == c.params);
    // Nothing is left for a pass to miss: no Constant node holds a tensor of a weight's size.
    for_each_graph(normalized.graph, [&](const Graph& g, int) {
      for (const auto& n : g.nodes) CHECK(n.op_type != "Constant");
    });
    // Idempotent: a second run finds nothing more.
    Model again = normalized;
    CHECK_FALSE(runtime::constants_to_initializers(again).changed());
    const auto feeds = feeds_for(c.file);
    const auto before = runtime::Session(original).run(feeds);
    const auto after = runtime::Session(normalized).run(feeds);
    REQUIRE(before.size() == after.size());
    for (const auto& [name, t] : before) CHECK(same_bits(t, after.at(name)));
  }
}

TEST_CASE("quantize and prune change a model whose weights are all Constant nodes, and matching nothing exits 2") {
  auto dir = test::more_models_dir();
  if (!dir) return;
  const std::string model = (*dir / "ch_ppocr_mobile_v2.0_cls_infer.onnx").string();
  test::TempDir tmp;
  auto r = test::run_slmopt("quantize '" + model + "' -o '" + tmp.file("q.slm") + "' --json");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  json doc = json::parse(r.out);
  CHECK(doc["weight_bytes_before"].get<int64_t>() == 124072 * 4);
  CHECK(doc["weight_bytes_after"].get<int64_t>() * 3 < doc["weight_bytes_before"].get<int64_t>());
  CHECK(fs::file_size(tmp.file("q.slm")) * 2 < fs::file_size(model));

  r = test::run_slmopt("prune '" + model + "' -o '" + tmp.file("p.onnx") + "' --sparsity 0.5 --json");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  doc = json::parse(r.out);
  CHECK(doc["zeros"].get<int64_t>() > 0);

  r = test::run_slmopt("quantize '" + model + "' -o '" + tmp.file("none.slm") + "' --min-elements 100000000 --bits 'nothing*=q4'");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("changed none of the 54 weights") && Catch::Contains("--bits rule 1 (nothing*=q4)") &&
                        Catch::Contains("--allow-empty"));
  CHECK_FALSE(fs::exists(tmp.file("none.slm")));
  r = test::run_slmopt("quantize '" + model + "' -o '" + tmp.file("none.slm") + "' --min-elements 100000000 --allow-empty");
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("changed none"));
  r = test::run_slmopt("prune '" + model + "' -o '" + tmp.file("none.onnx") + "' --min-elements 100000000");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("prune changed none"));
  r = test::run_slmopt("lowrank '" + model + "' -o '" + tmp.file("none.onnx") + "' --min-elements 100000000");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("lowrank factorized none"));
}

TEST_CASE("convert --constants-to-initializers writes the normalized form, and refuses a model that has none") {
  auto dir = test::more_models_dir();
  if (!dir) return;
  const std::string model = (*dir / "silero_vad_legacy.onnx").string();
  test::TempDir tmp;
  auto r = test::run_slmopt("convert '" + model + "' -o '" + tmp.file("n.onnx") + "' --constants-to-initializers --json");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(json::parse(r.out)["normalized"][0].get<std::string>(), Catch::Contains("moved out of If/Loop/Scan bodies"));
  const Model written = load_model(tmp.file("n.onnx"));
  for_each_graph(written.graph, [&](const Graph& g, int depth) {
    if (depth > 0) CHECK(g.initializers.empty());
  });
  r = test::run_slmopt("convert '" + tmp.file("n.onnx") + "' -o '" + tmp.file("m.onnx") + "' --constants-to-initializers");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("initializers already"));
}

TEST_CASE("a gate on a one-element output warns and measures the outputs where it means something") {
  CHECK(eval::vacuous_because("cosine", 1) != "");
  CHECK(eval::vacuous_because("top1", 1) != "");
  CHECK(eval::vacuous_because("cosine", 2) == "");
  CHECK(eval::vacuous_because("max_abs", 1) == "");
  auto dir = test::more_models_dir();
  if (!dir) return;
  const std::string model = (*dir / "silero_vad_legacy.onnx").string();
  test::TempDir tmp;
  // Silero's speech probability is [1, 1]; its states hn, cn are [2, 1, 64].
  fs::create_directories(tmp.file("s0"));
  for (const auto& [name, t] : feeds_for("silero_vad_legacy.onnx")) calib::write_npy(tmp.file("s0/" + name + ".npy"), t);
  auto r = test::run_slmopt("eval --reference '" + model + "' --candidate '" + model + "' --data '" + tmp.path().string() +
                            "' --gate 'cosine>=0.999' --json");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json doc = json::parse(r.out);
  CHECK(doc["gates"][0]["output"].get<std::string>() != "output");
  REQUIRE(doc["warnings"].size() == 1);
  CHECK_THAT(doc["warnings"][0].get<std::string>(), Catch::Contains("ignores output 'output'") && Catch::Contains("max_abs"));
}
