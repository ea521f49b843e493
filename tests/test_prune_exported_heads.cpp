// Attention heads in graphs as torch.onnx exports them: a BERT-style encoder
// (tests/data/exported_attention.onnx, written by tests/fixtures/export_attention.py)
// GPT-2 blocks with packed q/k/v Conv1D layers and a Split
// (tests/data/exported_gpt2_attention.onnx, tests/fixtures/export_gpt2_attention.py)
// and Llama blocks with grouped-query heads, rotary embedding and repeat_kv
// (tests/data/exported_llama_attention.onnx, tests/fixtures/export_llama_attention.py).
// The pruned models run at other batch and sequence sizes than they were
// exported with, and equal the originals whose output projections read
// nothing from the removed heads.
#include <algorithm>
#include <cmath>

#include "calib/collector.hpp"
#include "model_io.hpp"
#include "passes/prune.hpp"
#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;

namespace {

constexpr int64_t kHeads = 4, kHeadDim = 8, kWidth = 32;

calib::Sample encoder_inputs(uint32_t seed) {
  Tensor mask = test::gaussian_tensor({3, 1, 1, 7}, seed + 1);  // an additive mask, batch 3, sequence 7
  return {{"x", test::gaussian_tensor({3, 7, kWidth}, seed)}, {"mask", mask}};
}

calib::Sample decoder_inputs(uint32_t seed) { return {{"x", test::gaussian_tensor({3, 7, kWidth}, seed)}}; }

Tensor run(const Model& m, const calib::Sample& feeds) { return runtime::Session(m).run(feeds).at("y"); }

Tensor& weight(Model& m, const std::string& name) {
  return const_cast<NamedTensor*>(m.graph.find_initializer(name))->tensor;
}

int64_t parameters_of(const Model& m) {  // weights, not the shape constants
  int64_t n = 0;
  for (const auto& t : m.graph.initializers) n += t.tensor.dtype() == DType::F32 ? t.tensor.numel() : 0;
  return n;
}

struct Layout {
  bool packed = false;     // one q|k|v weight per layer, not three
  int64_t kv_heads = 4;    // of the four query heads' keys and values
  bool biases = true;
};

// Two layers of four query heads each; half the key/value heads go, each with its query heads.
void check_heads_pruned(const std::string& file, calib::Sample (*inputs)(uint32_t), Layout layout) {
  const int64_t per_kv = kHeads / layout.kv_heads, kept_kv = layout.kv_heads / 2;
  const Model m = load_model(test::test_data(file));
  const calib::Sample feeds = inputs(3);
  passes::PruneConfig config;
  config.structured = "heads";
  config.sparsity = "0";
  passes::PruneReport report;
  CHECK(run(passes::prune_model(m, config, report), feeds).bit_equal(run(m, feeds)));  // 0 %: the same model
  REQUIRE(report.groups.size() == 2);
  CHECK(report.groups[0].channels == layout.kv_heads);

  for (const char* method : {"magnitude", "wanda"}) {
    INFO(method);
    config.sparsity = "0.5";
    config.method = method;
    calib::CalibStats stats;
    if (std::string(method) == "wanda") {
      stats = calib::collect_stats(m, {inputs(5), inputs(6)}, {});
      config.stats = &stats;
    }
    report = {};
    const Model p = passes::prune_model(m, config, report);
    REQUIRE(report.groups.size() == 2);
    Model reference = m;
    for (const auto& group : report.groups) {
      CHECK(group.kept == kept_kv);
      REQUIRE(group.producers.size() == (layout.packed ? 1 : 3));
      int64_t columns = 0;  // the kept query heads' and key/value heads' columns
      for (const auto& name : group.producers) {
        const Tensor& w = p.graph.find_initializer(name)->tensor;
        REQUIRE(w.rank() == 2);
        CHECK(w.shape()[0] == kWidth);
        columns += w.shape()[1];
      }
      CHECK(columns == (kept_kv * per_kv + 2 * kept_kv) * kHeadDim);
      // The kept heads are those whose output rows came over; the reference zeroes the others'.
      const std::string& o = group.consumers.at(0);
      const Tensor& before = m.graph.find_initializer(o)->tensor;
      const Tensor& after = p.graph.find_initializer(o)->tensor;
      REQUIRE(after.shape() == std::vector<int64_t>{2 * kHeadDim, kWidth});
      std::vector<int64_t> kept;
      for (int64_t head = 0; head < kHeads; ++head)
        for (int64_t slot = 0; slot < 2; ++slot)
          if (std::equal(after.data<float>() + slot * kHeadDim * kWidth, after.data<float>() + (slot + 1) * kHeadDim * kWidth,
                         before.data<float>() + head * kHeadDim * kWidth))
            kept.push_back(head);
      REQUIRE(kept.size() == 2);
      float* wo = weight(reference, o).mutable_data<float>();
      for (int64_t head = 0; head < kHeads; ++head)
        if (std::find(kept.begin(), kept.end(), head) == kept.end())
          std::fill(wo + head * kHeadDim * kWidth, wo + (head + 1) * kHeadDim * kWidth, 0.0f);
    }
    // Per layer: 2 query heads' q columns (and biases) and output rows, and
    // their key/value heads' k and v columns (and biases).
    const int64_t removed_kv = layout.kv_heads - kept_kv, bias = layout.biases ? kHeadDim : 0;
    CHECK(parameters_of(p) == parameters_of(m) - 2 * (2 * (kWidth * kHeadDim + bias + kHeadDim * kWidth) +
                                                      2 * removed_kv * (kWidth * kHeadDim + bias)));
    const Tensor y = run(p, feeds), want = run(reference, feeds);
    REQUIRE(y.shape() == want.shape());
    double err = 0, norm = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
      err += std::pow(static_cast<double>(y.data<float>()[i]) - want.data<float>()[i], 2);
      norm += std::pow(static_cast<double>(want.data<float>()[i]), 2);
    }
    CHECK(std::sqrt(err / norm) < 1e-5);
  }
}

}  // namespace

TEST_CASE("attention heads in a torch.onnx export: q/k/v columns, output rows and the Reshape head counts go together") {
  check_heads_pruned("exported_attention.onnx", encoder_inputs, {});
}

TEST_CASE("GPT-2 attention exported by torch.onnx: packed Conv1D q/k/v sections, the Split sizes and the Gemm output rows") {
  check_heads_pruned("exported_gpt2_attention.onnx", decoder_inputs, {.packed = true});
}

TEST_CASE("Llama attention exported by torch.onnx: grouped-query heads through rotary embedding and repeat_kv") {
  // 4 query heads over 2 key/value heads: one key/value head goes with its two query heads.
  check_heads_pruned("exported_llama_attention.onnx", decoder_inputs, {.kv_heads = 2, .biases = false});
}

TEST_CASE("heads are refused where there is no attention to find") {
  const Model m = test::single_node_model("MatMul", test::gaussian_tensor({8, 4}, 1), {2, 8});
  passes::PruneConfig config;
  config.structured = "heads";
  config.sparsity = "0.5";
  passes::PruneReport report;
  CHECK_THROWS_WITH(passes::prune_model(m, config, report), Catch::Contains("found no attention layer"));
}
