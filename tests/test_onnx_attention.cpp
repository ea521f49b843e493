// ONNX's Attention op (opset 23) against the NumPy forward pass of
// tests/fixtures/write_onnx_attention.py (tests/data/onnx_attention/): a
// grouped-query decoder with boolean, additive and causal masks on 3-D
// inputs, and a 4-D call with a key/value cache, scale and softcap. Then head
// pruning of the decoder: a key/value head goes with its query heads and the
// head-count attributes follow.
#include <algorithm>
#include <cmath>

#include "heads_check.hpp"
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
  // The NumPy reference's inputs at every seed: the check compares pruned with zeroed-rows models, not with it.
  const calib::Sample in = feeds("decoder", kDecoderInputs);
  test::check_heads_pruned(load_model(data("decoder.onnx")), [&](uint32_t) { return in; },
                           {.kv_heads = 2, .biases = false}, [](const Model& p) {
                             for (const Node& n : p.graph.nodes)
                               if (n.op_type == "Attention") {
                                 CHECK(n.find_attribute("q_num_heads")->i == 2);
                                 CHECK(n.find_attribute("kv_num_heads")->i == 1);
                               }
                           });
}
