// ONNX's Attention op (opset 23) against the NumPy forward pass of
// tests/fixtures/write_onnx_attention.py (tests/data/onnx_attention/): a
// grouped-query decoder with boolean, additive and causal masks on 3-D
// inputs, and a 4-D call with a key/value cache, scale and softcap. Then head
// pruning of the decoder: a key/value head goes with its query heads and the
// head-count attributes follow.
#include <algorithm>
#include <cmath>

#include "calib/collector.hpp"
#include "calib/npy.hpp"
#include "eval/metrics.hpp"
#include "model_io.hpp"
#include "passes/prune.hpp"
#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;

namespace {

std::string data(const std::string& name) { return test::test_data("onnx_attention/" + name); }

calib::Sample feeds(const std::string& model, const std::vector<std::string>& names) {
  calib::Sample s;
  for (const auto& n : names) s[n] = calib::read_npy(data(model + "_" + n + ".npy"));
  return s;
}

double rel_l2(const Tensor& want, const Tensor& got) {
  REQUIRE(want.shape() == got.shape());
  return eval::compare_tensors(want, got)["rel_l2"];
}

int64_t parameters_of(const Model& m) {
  int64_t n = 0;
  for (const auto& t : m.graph.initializers) n += t.tensor.dtype() == DType::F32 ? t.tensor.numel() : 0;
  return n;
}

const std::vector<std::string> kDecoderInputs = {"x", "pad", "additive"};

}  // namespace

TEST_CASE("ONNX Attention (opset 23) equals the NumPy reference: grouped-query heads, masks, causal, cache, softcap") {
  const Model decoder = load_model(data("decoder.onnx"));
  const auto y = runtime::Session(decoder).run(feeds("decoder", kDecoderInputs));
  CHECK(rel_l2(calib::read_npy(data("decoder_y.npy")), y.at("y")) < 1e-5);

  const Model cache = load_model(data("cache.onnx"));
  const auto out = runtime::Session(cache).run(feeds("cache", {"q", "k", "v", "past_key", "past_value"}));
  CHECK(rel_l2(calib::read_npy(data("cache_y.npy")), out.at("y")) < 1e-5);
  CHECK(calib::read_npy(data("cache_present_key.npy")).bit_equal(out.at("present_key")));
  CHECK(calib::read_npy(data("cache_present_value.npy")).bit_equal(out.at("present_value")));

  Model bad = cache;
  bad.graph.nodes[0].inputs.push_back("q");  // nonpad_kv_seqlen, opset 24
  CHECK_THROWS_WITH(runtime::Session(bad).run(feeds("cache", {"q", "k", "v", "past_key", "past_value"})),
                    Catch::Contains("nonpad_kv_seqlen is not supported"));
  Model loose = decoder;
  loose.graph.inputs[2].shape.reset();  // let a mask of the wrong shape reach the kernel
  calib::Sample wrong = feeds("decoder", kDecoderInputs);
  wrong["additive"] = test::gaussian_tensor({2, 3, 6, 6}, 1);  // 3 heads do not broadcast to 4
  CHECK_THROWS_WITH(runtime::Session(loose).run(wrong), Catch::Contains("does not broadcast over axis 1"));
}

TEST_CASE("heads of ONNX Attention: a key/value head leaves with its query heads, q_num_heads and kv_num_heads follow") {
  const Model m = load_model(data("decoder.onnx"));
  const calib::Sample in = feeds("decoder", kDecoderInputs);
  auto run = [&](const Model& model) { return runtime::Session(model).run(in).at("y"); };
  passes::PruneConfig config;
  config.structured = "heads";
  config.sparsity = "0";
  passes::PruneReport report;
  CHECK(run(passes::prune_model(m, config, report)).bit_equal(run(m)));
  REQUIRE(report.groups.size() == 2);
  CHECK(report.groups[0].channels == 2);  // key/value heads

  constexpr int64_t kHeadDim = 8, kModel = 32;
  for (const char* method : {"magnitude", "wanda"}) {
    INFO(method);
    config.sparsity = "0.5";
    config.method = method;
    calib::CalibStats stats;
    if (std::string(method) == "wanda") {
      stats = calib::collect_stats(m, {in}, {});
      config.stats = &stats;
    }
    report = {};
    const Model p = passes::prune_model(m, config, report);
    Model reference = m;
    for (const auto& group : report.groups) {
      CHECK(group.kept == 1);
      REQUIRE(group.producers.size() == 3);
      CHECK(p.graph.find_initializer(group.producers[0])->tensor.shape() == std::vector<int64_t>{kModel, 2 * kHeadDim});
      CHECK(p.graph.find_initializer(group.producers[1])->tensor.shape() == std::vector<int64_t>{kModel, kHeadDim});
      CHECK(p.graph.find_initializer(group.producers[2])->tensor.shape() == std::vector<int64_t>{kModel, kHeadDim});
      // The kept key/value head is the one whose two query heads' output rows came over, in order.
      const Tensor& before = m.graph.find_initializer(group.consumers.at(0))->tensor;
      const Tensor& after = p.graph.find_initializer(group.consumers.at(0))->tensor;
      REQUIRE(after.shape() == std::vector<int64_t>{2 * kHeadDim, kModel});
      int64_t kept = -1;
      for (int64_t kv = 0; kv < 2; ++kv)
        if (std::equal(after.data<float>(), after.data<float>() + after.numel(), before.data<float>() + kv * after.numel()))
          kept = kv;
      REQUIRE(kept >= 0);
      float* wo = const_cast<NamedTensor*>(reference.graph.find_initializer(group.consumers[0]))->tensor.mutable_data<float>();
      std::fill(wo + (1 - kept) * after.numel(), wo + (2 - kept) * after.numel(), 0.0f);
    }
    for (const Node& n : p.graph.nodes)
      if (n.op_type == "Attention") {
        CHECK(n.find_attribute("q_num_heads")->i == 2);
        CHECK(n.find_attribute("kv_num_heads")->i == 1);
      }
    // Per layer: 2 query heads' q columns and output rows, 1 key/value head's k and v columns.
    CHECK(parameters_of(p) == parameters_of(m) - 2 * (2 * kModel * kHeadDim + 2 * kModel * kHeadDim + 2 * kHeadDim * kModel));
    CHECK(rel_l2(run(reference), run(p)) < 1e-5);
  }
}
