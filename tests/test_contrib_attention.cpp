// com.microsoft Attention and MultiHeadAttention: the kernels against a plain
// loop for every mask form they read, and head pruning on the two-layer
// encoders of tests/data/contrib_attention.onnx and
// contrib_multi_head_attention.onnx (written by
// tests/fixtures/write_contrib_attention.py). test_ort_oracle.cpp checks the
// models, original and pruned, against ONNX Runtime.
#include <algorithm>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "heads_check.hpp"
#include "model_io.hpp"
#include "passes/prune.hpp"
#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;

namespace {

constexpr int64_t kBatch = 2, kSeq = 5, kIn = 6, kHeads = 2, kDq = 3, kDv = 4;
constexpr int64_t kWidth = 2 * kHeads * kDq + kHeads * kDv;

Model attention_model(const Tensor& mask, bool causal) {
  Model m = test::single_node_model("Attention", test::gaussian_tensor({kIn, kWidth}, 11), {kBatch, kSeq, kIn});
  m.opsets.push_back({"com.microsoft", 1});
  Node& n = m.graph.nodes[0];
  n.domain = "com.microsoft";
  m.graph.initializers.push_back({"b", test::gaussian_tensor({kWidth}, 12, 0.3f), ""});
  m.graph.initializers.push_back({"mask", mask, ""});
  n.inputs = {"x", "w", "b", "mask"};
  n.attributes = {Attribute::integer("num_heads", kHeads),
                  Attribute::integers("qkv_hidden_sizes", {kHeads * kDq, kHeads * kDq, kHeads * kDv}),
                  Attribute::integer("unidirectional", causal ? 1 : 0)};
  return m;
}

// The definition, one score at a time in double; `masked(b, i, t)` says which keys a query may not see.
template <class Masked>
std::vector<double> reference(const Model& m, const Tensor& x, Masked masked) {
  const float* w = m.graph.find_initializer("w")->tensor.data<float>();
  const float* bias = m.graph.find_initializer("b")->tensor.data<float>();
  std::vector<double> qkv(static_cast<size_t>(kBatch * kSeq * kWidth));
  for (int64_t r = 0; r < kBatch * kSeq; ++r)
    for (int64_t j = 0; j < kWidth; ++j) {
      double acc = bias[j];
      for (int64_t p = 0; p < kIn; ++p) acc += static_cast<double>(x.data<float>()[r * kIn + p]) * w[p * kWidth + j];
      qkv[static_cast<size_t>(r * kWidth + j)] = acc;
    }
  auto at = [&](int64_t b, int64_t t, int64_t col) { return qkv[static_cast<size_t>((b * kSeq + t) * kWidth + col)]; };
  std::vector<double> out(static_cast<size_t>(kBatch * kSeq * kHeads * kDv), 0.0);
  for (int64_t b = 0; b < kBatch; ++b)
    for (int64_t h = 0; h < kHeads; ++h)
      for (int64_t i = 0; i < kSeq; ++i) {
        std::vector<double> p(static_cast<size_t>(kSeq));
        double top = -1e300, sum = 0;
        for (int64_t t = 0; t < kSeq; ++t) {
          double s = 0;
          for (int64_t d = 0; d < kDq; ++d) s += at(b, i, h * kDq + d) * at(b, t, kHeads * kDq + h * kDq + d);
          p[static_cast<size_t>(t)] = s / std::sqrt(static_cast<double>(kDq)) + (masked(b, i, t) ? -10000.0 : 0.0);
          top = std::max(top, p[static_cast<size_t>(t)]);
        }
        for (double& v : p) sum += (v = std::exp(v - top));
        for (int64_t t = 0; t < kSeq; ++t)
          for (int64_t d = 0; d < kDv; ++d)
            out[static_cast<size_t>(((b * kSeq + i) * kHeads + h) * kDv + d)] +=
                p[static_cast<size_t>(t)] / sum * at(b, t, 2 * kHeads * kDq + h * kDv + d);
      }
  return out;
}

double rel_error(const Tensor& y, const std::vector<double>& want) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err += std::pow(y.data<float>()[i] - want[i], 2);
    norm += want[i] * want[i];
  }
  return std::sqrt(err / norm);
}

Tensor int32s(std::vector<int64_t> shape, const std::vector<int32_t>& values) {
  return Tensor::from_values<int32_t>(DType::I32, std::move(shape), values);
}



calib::Sample encoder_inputs(uint32_t seed) {  // batch 3, sequence 7; the second and third padded
  std::vector<int64_t> mask(21, 1);
  std::fill(mask.begin() + 7 + 4, mask.begin() + 14, 0);
  std::fill(mask.begin() + 14 + 2, mask.end(), 0);
  return {{"x", test::gaussian_tensor({3, 7, 32}, seed)},
          {"mask", Tensor::from_values<int64_t>(DType::I64, {3, 7}, mask)}};
}

}  // namespace

TEST_CASE("com.microsoft Attention equals the plain loop for every mask form ONNX Runtime reads") {
  const Tensor x = test::gaussian_tensor({kBatch, kSeq, kIn}, 13);
  const std::vector<int32_t> raw = {1, 1, 0, 1, 0, 1, 1, 1, 1, 1};
  struct Case {
    const char* what;
    Tensor mask;
    bool causal;
    std::function<bool(int64_t, int64_t, int64_t)> masked;
  };
  const std::vector<Case> cases = {
      {"end positions", int32s({2}, {3, 5}), false,
       [](int64_t b, int64_t, int64_t t) { return t >= (b == 0 ? 3 : 5); }},
      {"end and start positions", int32s({4}, {4, 5, 1, 2}), false,
       [](int64_t b, int64_t, int64_t t) { return t >= (b == 0 ? 4 : 5) || t < (b == 0 ? 1 : 2); }},
      {"raw [batch, keys], causal", int32s({2, 5}, raw), true,
       [&](int64_t b, int64_t i, int64_t t) { return raw[static_cast<size_t>(b * 5 + t)] == 0 || t > i; }},
      {"raw [batch, seq, keys]", int32s({2, 5, 5}, std::vector<int32_t>(50, 1)), false,
       [](int64_t, int64_t, int64_t) { return false; }},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const Model m = attention_model(c.mask, c.causal);
    const Tensor y = test::run1(m, x);
    REQUIRE(y.shape() == std::vector<int64_t>{kBatch, kSeq, kHeads * kDv});
    CHECK(rel_error(y, reference(m, x, c.masked)) < 1e-6);
  }
  Model bad = attention_model(int32s({3}, {1, 2, 3}), false);
  CHECK_THROWS_WITH(test::run1(bad, x), Catch::Contains("mask_index of shape [3] is not supported"));
  bad.graph.nodes[0].attributes[0] = Attribute::integer("num_heads", 3);
  CHECK_THROWS_WITH(test::run1(bad, x), Catch::Contains("into 3 heads"));
}

TEST_CASE("com.microsoft MultiHeadAttention equals the plain loop: cross attention, bias, key padding") {
  constexpr int64_t B = 2, S = 3, L = 5, N = 2, Dq = 4, Dv = 6;
  Model m;
  m.opsets = {{"", 17}, {"com.microsoft", 1}};
  const std::vector<int32_t> keep = {1, 1, 1, 0, 0, 1, 0, 1, 1, 1};
  m.graph.initializers = {{"k", test::gaussian_tensor({B, L, Dq}, 31), ""},
                          {"v", test::gaussian_tensor({B, L, Dv}, 32), ""},
                          {"bias", test::gaussian_tensor({2 * Dq + Dv}, 33, 0.3f), ""},
                          {"mask", int32s({B, L}, keep), ""}};
  ValueInfo x, y;
  x.name = "x";
  y.name = "y";
  x.dtype = y.dtype = DType::F32;
  m.graph.inputs = {x};
  m.graph.outputs = {y};
  Node n;
  n.name = "mha";
  n.op_type = "MultiHeadAttention";
  n.domain = "com.microsoft";
  n.inputs = {"x", "k", "v", "bias", "mask"};
  n.outputs = {"y"};
  n.attributes = {Attribute::integer("num_heads", N)};
  m.graph.nodes = {n};
  const Tensor q = test::gaussian_tensor({B, S, Dq}, 34);
  const Tensor out = test::run1(m, q);
  REQUIRE(out.shape() == std::vector<int64_t>{B, S, Dv});
  const float* k = m.graph.find_initializer("k")->tensor.data<float>();
  const float* v = m.graph.find_initializer("v")->tensor.data<float>();
  const float* bias = m.graph.find_initializer("bias")->tensor.data<float>();
  std::vector<double> want(static_cast<size_t>(B * S * Dv), 0.0);
  const int64_t dq = Dq / N, dv = Dv / N;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < N; ++h)
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> p(static_cast<size_t>(L));
        double top = -1e300, sum = 0;
        for (int64_t t = 0; t < L; ++t) {
          double dot = 0;
          for (int64_t d = 0; d < dq; ++d)
            dot += (static_cast<double>(q.data<float>()[(b * S + i) * Dq + h * dq + d]) + bias[h * dq + d]) *
                   (static_cast<double>(k[(b * L + t) * Dq + h * dq + d]) + bias[Dq + h * dq + d]);
          p[static_cast<size_t>(t)] =
              dot / std::sqrt(static_cast<double>(dq)) + (keep[static_cast<size_t>(b * L + t)] ? 0.0 : -10000.0);
          top = std::max(top, p[static_cast<size_t>(t)]);
        }
        for (double& e : p) sum += (e = std::exp(e - top));
        for (int64_t t = 0; t < L; ++t)
          for (int64_t d = 0; d < dv; ++d)
            want[static_cast<size_t>((b * S + i) * Dv + h * dv + d)] +=
                p[static_cast<size_t>(t)] / sum *
                (static_cast<double>(v[(b * L + t) * Dv + h * dv + d]) + bias[2 * Dq + h * dv + d]);
      }
  CHECK(rel_error(out, want) < 1e-6);
  m.graph.nodes[0].inputs.resize(6);
  m.graph.nodes[0].inputs[5] = "bias";
  CHECK_THROWS_WITH(test::run1(m, q), Catch::Contains("MultiHeadAttention with attention_bias is not supported"));
}

TEST_CASE("heads of com.microsoft Attention and MultiHeadAttention: q/k/v columns, output rows and num_heads go together") {
  for (const char* file : {"contrib_attention.onnx", "contrib_multi_head_attention.onnx"}) {
    INFO(file);
    const bool packed = std::string(file) == "contrib_attention.onnx";
    test::check_heads_pruned(load_model(test::test_data(file)), encoder_inputs, {.packed = packed}, [](const Model& p) {
      for (const Node& n : p.graph.nodes)
        if (n.domain == "com.microsoft") {
          CHECK(n.find_attribute("num_heads")->i == 2);
          if (const Attribute* sizes = n.find_attribute("qkv_hidden_sizes"))
            CHECK(sizes->ints == std::vector<int64_t>{16, 16, 16});
        }
    });
  }
}

TEST_CASE("head pruning refuses com.microsoft Attention it cannot shrink whole") {
  Model m = load_model(test::test_data("contrib_attention.onnx"));
  for (Node& n : m.graph.nodes)
    if (n.op_type == "Attention") {
      n.inputs.resize(6);
      n.inputs[5] = "x";  // an attention bias: [batch, heads, seq, keys], whose head axis would need cutting too
      break;
    }
  passes::PruneConfig config;
  config.structured = "heads";
  config.sparsity = "0.5";
  passes::PruneReport report;
  CHECK_THROWS_WITH(passes::prune_model(m, config, report),
                    Catch::Contains("layer0/Attention' has past state or an attention bias"));
}

TEST_CASE("quantize takes com.microsoft Attention's packed projection as a weight") {
  test::TempDir tmp;
  const std::string model = test::test_data("contrib_attention.onnx");
  auto q = test::run_slmopt("quantize '" + model + "' -o '" + tmp.file("q.slm") + "' --bits '*=int4-g32' --json -q");
  INFO(q.err);
  REQUIRE(q.exit_code == 0);
  const auto doc = nlohmann::json::parse(q.out);
  int attention_weights = 0;
  for (const auto& t : doc.at("tensors"))
    if (t.at("op") == "Attention") {
      ++attention_weights;
      CHECK(t.at("action") == "int4-g32");
      CHECK(t.at("shape") == nlohmann::json::array({32, 96}));
    }
  CHECK(attention_weights == 2);
  auto e = test::run_slmopt("eval --reference '" + model + "' --candidate '" + tmp.file("q.slm") +
                            "' --random 2 --gate 'cosine>=0.99'");
  INFO(e.out << e.err);
  CHECK(e.exit_code == 0);
}
