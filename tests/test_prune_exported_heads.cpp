// Attention heads in graphs as torch.onnx exports them: a BERT-style encoder
// (tests/data/exported_attention.onnx, written by tests/fixtures/export_attention.py)
// GPT-2 blocks with packed q/k/v Conv1D layers and a Split
// (tests/data/exported_gpt2_attention.onnx, tests/fixtures/export_gpt2_attention.py)
// and Llama blocks with grouped-query heads, rotary embedding and repeat_kv
// (tests/data/exported_llama_attention.onnx, tests/fixtures/export_llama_attention.py),
// also with Phi-3's packed q/k/v of unequal sections (exported_phi3_attention.onnx).
// The pruned models run at other batch and sequence sizes than they were
// exported with, and equal the originals whose output projections read
// nothing from the removed heads.
#include "heads_check.hpp"
#include "model_io.hpp"
#include "passes/prune.hpp"
#include "test_util.hpp"

using namespace slmopt;

namespace {

constexpr int64_t kWidth = 32;

calib::Sample encoder_inputs(uint32_t seed) {
  Tensor mask = test::gaussian_tensor({3, 1, 1, 7}, seed + 1);  // an additive mask, batch 3, sequence 7
  return {{"x", test::gaussian_tensor({3, 7, kWidth}, seed)}, {"mask", mask}};
}

calib::Sample decoder_inputs(uint32_t seed) { return {{"x", test::gaussian_tensor({3, 7, kWidth}, seed)}}; }

}  // namespace

TEST_CASE("attention heads in a torch.onnx export: q/k/v columns, output rows and the Reshape head counts go together") {
  test::check_heads_pruned(load_model(test::test_data("exported_attention.onnx")), encoder_inputs, {});
}

TEST_CASE("GPT-2 attention exported by torch.onnx: packed Conv1D q/k/v sections, the Split sizes and the Gemm output rows") {
  test::check_heads_pruned(load_model(test::test_data("exported_gpt2_attention.onnx")), decoder_inputs, {.packed = true});
}

TEST_CASE("Llama attention exported by torch.onnx: grouped-query heads through rotary embedding and repeat_kv") {
  // 4 query heads over 2 key/value heads: one key/value head goes with its two query heads.
  test::check_heads_pruned(load_model(test::test_data("exported_llama_attention.onnx")), decoder_inputs,
                           {.kv_heads = 2, .biases = false});
}

TEST_CASE("Phi-3-style packed q/k/v with unequal sections: the Split sizes follow the query and key/value heads kept") {
  test::check_heads_pruned(load_model(test::test_data("exported_phi3_attention.onnx")), decoder_inputs,
                           {.packed = true, .kv_heads = 2, .biases = false}, [](const Model& p) {
                             for (const Node& n : p.graph.nodes)
                               if (n.op_type == "Split") {
                                 const Tensor* sizes = &p.graph.find_initializer(n.inputs.at(1))->tensor;
                                 CHECK(std::vector<int64_t>(sizes->data<int64_t>(), sizes->data<int64_t>() + 3) ==
                                       std::vector<int64_t>{16, 8, 8});
                               }
                           });
}

TEST_CASE("heads are refused where there is no attention to find") {
  const Model m = test::single_node_model("MatMul", test::gaussian_tensor({8, 4}, 1), {2, 8});
  passes::PruneConfig config;
  config.structured = "heads";
  config.sparsity = "0.5";
  passes::PruneReport report;
  CHECK_THROWS_WITH(passes::prune_model(m, config, report), Catch::Contains("found no attention layer"));
}
