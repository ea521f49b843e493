// The quantize pass end to end: .slm is lossless and rejects damaged files;
// on the real openWakeWord chain 8-bit weights stay close and 4-bit grouped
// classifiers keep their decisions; the CLI's rules, reports and config errors.
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <onnx/onnx_pb.h>

#include "core/quant_tensor.hpp"
#include "eval/metrics.hpp"
#include "onnx/onnx_io.hpp"
#include "passes/quantize.hpp"
#include "runtime/session.hpp"
#include "slm/slm_io.hpp"
#include "test_util.hpp"

using namespace slmopt;
namespace fs = std::filesystem;

namespace {

Model quantize_all(const Model& m, const std::string& spec, passes::QuantizeReport* report_out = nullptr) {
  passes::QuantizeConfig c;
  c.rules = parse_rule_shorthand("*=" + spec, "bits", "scheme");
  passes::QuantizeReport report;
  Model q = passes::quantize_model(m, c, report);
  if (report_out) *report_out = report;
  return q;
}

}  // namespace

TEST_CASE(".slm is lossless and deterministic for quantized models") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  test::TempDir tmp;
  const Model m = onnx_format::read_onnx((*dir / "embedding_model.onnx").string());
  const Model q = quantize_all(m, "q4");
  slm::write_slm(q, tmp.file("a.slm"));
  const Model back = slm::read_slm(tmp.file("a.slm"));
  REQUIRE(back.graph.initializers.size() == q.graph.initializers.size());
  int quantized = 0;
  for (size_t i = 0; i < q.graph.initializers.size(); ++i) {
    CHECK(back.graph.initializers[i].name == q.graph.initializers[i].name);
    CHECK(back.graph.initializers[i].tensor.bit_equal(q.graph.initializers[i].tensor));
    quantized += q.graph.initializers[i].tensor.is_quantized();
  }
  CHECK(quantized == 20);
  Model sa = q, sb = back;
  sa.graph.initializers.clear();
  sb.graph.initializers.clear();
  CHECK(onnx_format::model_to_proto(sa).SerializeAsString() == onnx_format::model_to_proto(sb).SerializeAsString());
  // Writing what was read gives the same bytes; so does quantizing again.
  slm::write_slm(back, tmp.file("b.slm"));
  slm::write_slm(quantize_all(m, "q4"), tmp.file("c.slm"));
  CHECK(test::read_bytes(tmp.file("a.slm")) == test::read_bytes(tmp.file("b.slm")));
  CHECK(test::read_bytes(tmp.file("a.slm")) == test::read_bytes(tmp.file("c.slm")));
}

TEST_CASE("damaged .slm files give one clear error") {
  test::TempDir tmp;
  Model m;
  m.opsets = {{"", 21}};
  m.graph.inputs = {{"x", DType::F32, std::nullopt, {}, {}, {}}};
  m.graph.outputs = {{"y", DType::F32, std::nullopt, {}, {}, {}}};
  Tensor w(DType::F32, {64, 48});
  for (int64_t i = 0; i < w.numel(); ++i) w.mutable_data<float>()[i] = std::sin(static_cast<float>(i));
  m.graph.initializers = {{"w", w, {}}};
  m.graph.nodes = {{"mm", "MatMul", "", {"x", "w"}, {"y"}, {}, {}}};
  slm::write_slm(quantize_all(m, "q4"), tmp.file("good.slm"));
  const std::string good = test::read_bytes(tmp.file("good.slm"));
  auto fails_with = [&](std::string bytes, const std::string& expected) {
    test::write_bytes(tmp.file("bad.slm"), bytes);
    try {
      slm::read_slm(tmp.file("bad.slm"));
      FAIL("no error for " << expected);
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::BadInput);
      CHECK_THAT(e.what(), Catch::Contains("bad.slm") && Catch::Contains(expected));
    }
  };
  fails_with(good.substr(0, 10), "bad magic");
  fails_with(good.substr(0, good.size() - 100), "run past the end");
  std::string huge = good;
  huge[15] = '\x7f';
  fails_with(huge, "header length");
  std::string broken = good;
  broken[20] = '#';
  fails_with(broken, "malformed header");
  // A part whose declared size disagrees with its scheme.
  std::string lying = good;
  const size_t at = lying.find("\"count\":3072");
  REQUIRE(at != std::string::npos);
  lying.replace(at, 12, "\"count\":3071");
  fails_with(lying, "does not match");
}

// Measured, not yet gated: on speech-like windows 8-bit weights keep the
// classifiers' scores at cosine 0.9996-1.0 but the 20-layer embedding model
// only at 0.9956 (0.9999 on random inputs); issue #4 asks for 0.9999, which
// needs the calibrated algorithms (GPTQ, activation-aware scaling).
TEST_CASE("wake-word chain: 8-bit weights stay close, 4-bit classifiers keep their decisions") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  const Tensor windows = test::mel_windows(*dir, test::speech_like_audio());
  const Model emb = onnx_format::read_onnx((*dir / "embedding_model.onnx").string());
  const Tensor e_float = test::run1(emb, windows);
  const Tensor e_int8 = test::run1(quantize_all(emb, "int8-ch"), windows);
  auto em = eval::compare_tensors(e_float, e_int8);
  CHECK(em["cosine"] >= 0.99);
  WARN("embedding int8-ch: cosine " << em["cosine"] << ", rel_l2 " << em["rel_l2"]);
  const int64_t n = e_float.shape()[0];
  int classifiers = 0;
  for (const auto& entry : fs::directory_iterator(*dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".onnx" || name == "melspectrogram.onnx" || name == "embedding_model.onnx" ||
        name == "silero_vad.onnx")
      continue;
    const Model clf = onnx_format::read_onnx(entry.path().string());
    const Model c8 = quantize_all(clf, "int8-g32"), c8ch = quantize_all(clf, "int8-ch"), c4 = quantize_all(clf, "q4");
    const int64_t needed = clf.graph.inputs.at(0).shape->at(1).value;
    std::vector<float> s_float, s8, s8ch, s4;
    for (int64_t start = 0; start + needed <= n; ++start) {
      Tensor features(DType::F32, {1, needed, 96});
      std::memcpy(features.mutable_bytes(), e_float.bytes() + start * 96 * sizeof(float),
                  static_cast<size_t>(needed) * 96 * sizeof(float));
      auto add = [&](const Model& model, std::vector<float>& out) {
        const Tensor y = test::run1(model, features);
        out.insert(out.end(), y.data<float>(), y.data<float>() + y.numel());
      };
      add(clf, s_float);
      add(c8, s8);
      add(c8ch, s8ch);
      add(c4, s4);
    }
    REQUIRE(!s_float.empty());
    auto as_tensor = [](const std::vector<float>& v) {
      return Tensor::from_values<float>(DType::F32, {static_cast<int64_t>(v.size())}, v);
    };
    const double cos8 = eval::compare_tensors(as_tensor(s_float), as_tensor(s8))["cosine"];
    const double cos8ch = eval::compare_tensors(as_tensor(s_float), as_tensor(s8ch))["cosine"];
    INFO(name << ": int8-g32 score cosine " << cos8);
    WARN(name << ": score cosine int8-g32 " << cos8 << ", int8-ch " << cos8ch);
    CHECK(cos8 >= 0.999);
    for (size_t i = 0; i < s_float.size(); ++i) CHECK((s_float[i] > 0.5f) == (s4[i] > 0.5f));
    ++classifiers;
  }
  CHECK(classifiers == 6);
}

TEST_CASE("slmopt quantize: rules, report, warnings and bad configs") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  test::TempDir tmp;
  const std::string model = (*dir / "embedding_model.onnx").string();
  test::write_bytes(tmp.file("rules.yaml"),
                    "default: q4\n"
                    "rules:\n"
                    "  - match: \"model/conv2d/*\"\n"
                    "    keep: f16\n"
                    "  - match: \"*conv2d_19*\"\n"
                    "    bits: 8\n"
                    "  - op: Conv\n"
                    "    match: \"*conv2d_1?/*\"\n"
                    "    scheme: int3-g16-k6\n"
                    "  - match: \"*no_such_layer*\"\n"
                    "    bits: 2\n");
  auto r = test::run_slmopt("quantize '" + model + "' -o '" + tmp.file("q.slm") + "' --config '" + tmp.file("rules.yaml") +
                            "' --report '" + tmp.file("r.json") + "'");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("warning: rule 4") && Catch::Contains("matched no weight"));
  const auto report = nlohmann::json::parse(test::read_bytes(tmp.file("r.json")));
  std::map<std::string, std::string> action;
  for (const auto& t : report["tensors"]) action[t["name"].get<std::string>()] = t["action"].get<std::string>();
  CHECK(action.size() == 20);
  CHECK(action["model/conv2d/Conv2D_weights_fused_bn"] == "keep f16");
  CHECK(action["model/conv2d_19/Conv2D/ReadVariableOp:0"] == "int8-g32");
  CHECK(action["model/conv2d_12/Conv2D_weights_fused_bn"] == "int3-g16-k6");
  CHECK(action["model/conv2d_5/Conv2D_weights_fused_bn"] == "int4-g32-asym-k6");
  // The .slm runs in eval against the original.
  auto e = test::run_slmopt("eval --reference '" + model + "' --candidate '" + tmp.file("q.slm") +
                            "' --random 2 --gate 'cosine>=0.9'");
  INFO(e.out << e.err);
  CHECK(e.exit_code == 0);

  // f32 and f16 as a scheme keep the weight float (shorthand and --default).
  auto kept = test::run_slmopt("quantize '" + model + "' -o '" + tmp.file("k.slm") +
                               "' --bits 'model/conv2d/*=f16,*conv2d_19*=8' --default f32 --json -q");
  INFO(kept.err);
  REQUIRE(kept.exit_code == 0);
  action.clear();
  const auto kept_doc = nlohmann::json::parse(kept.out);
  for (const auto& t : kept_doc["tensors"]) action[t["name"].get<std::string>()] = t["action"].get<std::string>();
  CHECK(action["model/conv2d/Conv2D_weights_fused_bn"] == "keep f16");
  CHECK(action["model/conv2d_19/Conv2D/ReadVariableOp:0"] == "int8-g32");
  CHECK(action["model/conv2d_5/Conv2D_weights_fused_bn"] == "keep f32");

  struct Bad {
    const char* flags;
    const char* message;
  };
  const Bad bad[] = {
      {"--bits '*=float4'", "unknown scheme 'float'"},
      {"--bits '*=9'", "bits must be 1 to 8, got 9"},
      {"--bits '*=0'", "bits must be 1 to 8, got 0"},
      {"--bits '*=int4-g0'", "group size must be a positive integer"},
      {"--bits 'oops'", "is not PATTERN=VALUE"},
      {"--algorithm gptq", "needs calibration data"},
  };
  for (const auto& b : bad) {
    auto res = test::run_slmopt("quantize '" + model + "' -o '" + tmp.file("x.slm") + "' " + b.flags);
    INFO(b.flags << ": " << res.err);
    CHECK(res.exit_code == 2);
    CHECK_THAT(res.err, Catch::Contains(b.message));
  }
  test::write_bytes(tmp.file("zero.yaml"), "rules:\n  - match: \"*\"\n    group: 0\n");
  auto z = test::run_slmopt("quantize '" + model + "' -o '" + tmp.file("x.slm") + "' --config '" + tmp.file("zero.yaml") + "'");
  CHECK(z.exit_code == 2);
  CHECK_THAT(z.err, Catch::Contains("group size must be positive"));
  test::write_bytes(tmp.file("typo.yaml"), "rules:\n  - match: \"*\"\n    bitz: 4\n");
  z = test::run_slmopt("quantize '" + model + "' -o '" + tmp.file("x.slm") + "' --config '" + tmp.file("typo.yaml") + "'");
  CHECK(z.exit_code == 2);
  CHECK_THAT(z.err, Catch::Contains("unknown setting 'bitz'"));
  CHECK(!fs::exists(tmp.file("x.slm")));
}
