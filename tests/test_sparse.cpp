// Sparse storage (quant/sparse.hpp): every scheme keeps pruned weights at
// exactly zero and costs exactly what it reports; files round-trip it and
// refuse masks that do not match; GPTQ keeps the zeros; a pruned model packed
// sparse is smaller by exactly the bytes dropped and runs to the same outputs.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "blob/blob_io.hpp"
#include "core/quant_tensor.hpp"
#include "onnx/onnx_io.hpp"
#include "quant/gptq.hpp"
#include "quant/hessian.hpp"
#include "quant/quantize_weight.hpp"
#include "quant/scheme_families.hpp"
#include "quant/sparse.hpp"
#include "quant/spec.hpp"
#include "runtime/session.hpp"
#include "slm/slm_io.hpp"
#include "test_util.hpp"

using namespace slmopt;

namespace {

// A weight with every other value and the whole of row 3 pruned, and a few
// tiny survivors that must not be mistaken for zeros.
Tensor pruned_weight(std::vector<int64_t> shape, uint32_t seed) {
  Tensor w = test::gaussian_tensor(std::move(shape), seed);
  float* v = w.mutable_data<float>();
  const int64_t cols = w.numel() / w.shape()[0];
  for (int64_t i = 0; i < w.numel(); ++i)
    if ((i * 7 + seed) % 2 == 0 || i / cols == 3) v[i] = 0.0f;
  v[1] = 1e-30f;
  return w;
}

int64_t zeros_of(const Tensor& t) {
  const float* v = t.data<float>();
  return std::count(v, v + t.numel(), 0.0f);
}

Tensor sparse_of(const Tensor& w, quant::InputAxis axis, const quant::Scheme& scheme, const QuantParams& params) {
  const Tensor dense = quant::quantize_weight(w, axis, scheme, params, {});
  int64_t rows = 0, cols = 0, kept = 0;
  const std::vector<float> m = quant::weight_rows(w, axis, rows, cols);
  return quant::with_sparse_mask(dense, quant::nonzero_mask(m.data(), rows * cols, kept));
}

}  // namespace

TEST_CASE("sparse storage: pruned weights are exactly 0, kept ones as dense, and the cost is exact") {
  const Tensor w = pruned_weight({24, 100}, 3);  // rows of 100: the last group of 32 is short
  const int64_t n = w.numel(), kept = n - zeros_of(w);
  std::vector<std::pair<const quant::Scheme*, QuantParams>> cases;
  for (const char* spec : {"q4", "q8", "int3-g16", "q4n", "nf4-g64", "t2", "b1", "q2", "int5-ch-asym", "int4-tensor",
                           "int6-g16-asym-k6x64", "q6"}) {
    const quant::QuantSpec s = quant::parse_spec(spec);
    cases.emplace_back(s.scheme, s.params);
  }
  for (int bits : {32, 16}) {
    QuantParams p;
    p.bits = bits;
    cases.emplace_back(&quant::kFloatScheme, p);
  }
  for (const auto& [scheme, params] : cases) {
    for (const auto axis : {quant::InputAxis::Rest, quant::InputAxis::First}) {
      INFO(scheme->name << params.bits << " axis " << (axis == quant::InputAxis::First ? "first" : "rest"));
      const Tensor dense = quant::quantize_weight(w, axis, *scheme, params, {});
      const Tensor sparse = sparse_of(w, axis, *scheme, params);
      const QuantTensor& q = *sparse.quant();
      if (scheme->name == "ternary") {  // five weights a byte: stays dense, its 0 exact
        CHECK_FALSE(quant::is_sparse(q));
        const Tensor t = quant::dequantize(sparse);
        for (int64_t i = 0; i < n; ++i)
          if (w.data<float>()[i] == 0.0f && t.data<float>()[i] != 0.0f) FAIL_CHECK("weight " << i);
        continue;
      }
      REQUIRE(quant::is_sparse(q));
      CHECK_FALSE(quant::is_expanded(q));
      CHECK_NOTHROW(quant::validate_quant_tensor(q));
      const int code_bits = q.part("codes")->bits;
      CHECK(q.part("codes")->count == kept);
      CHECK(q.storage_bits() == dense.quant()->storage_bits() - (n - kept) * code_bits + n);
      const Tensor a = quant::dequantize(dense), b = quant::dequantize(sparse);
      for (int64_t i = 0; i < n; ++i) {
        const float want = w.data<float>()[i] == 0.0f ? 0.0f : a.data<float>()[i];
        if (b.data<float>()[i] != want) FAIL_CHECK("weight " << i << ": " << b.data<float>()[i] << " != " << want);
      }
      // Read in place a block of rows at a time (what kernels do), in any
      // order and any block size, it equals the whole tensor expanded.
      const auto expanded = quant::expand_sparse(q);
      CHECK(quant::is_expanded(*expanded));
      std::vector<float> reference(static_cast<size_t>(n));
      quant::dequantize_rows(*expanded, 0, q.rows, reference.data());
      const std::vector<std::pair<int64_t, int64_t>> blocks = {{0, q.rows}, {2, 7}, {7, 8}, {0, 1}, {3, 3},
                                                              {q.rows - 1, q.rows}, {1, q.rows}, {5, 9}};
      quant::RowDecoder decoder(q);
      for (const auto& [r0, r1] : blocks) {
        std::vector<float> window(static_cast<size_t>((r1 - r0) * q.cols));
        decoder.decode(r0, r1, window.data());
        CHECK(std::equal(window.begin(), window.end(), reference.begin() + r0 * q.cols));
      }
    }
  }
}

TEST_CASE("a sparse window counts the kept weights before it from any bit") {
  std::vector<uint8_t> mask = {0xb5, 0x0f, 0xff, 0x01, 0x80};
  for (int64_t begin = 0; begin <= 40; ++begin)
    for (int64_t end = begin; end <= 40; ++end) {
      int64_t want = 0;
      for (int64_t i = begin; i < end; ++i) want += (mask[static_cast<size_t>(i / 8)] >> (i % 8)) & 1;
      if (quant::count_kept_range(mask.data(), begin, end) != want) FAIL_CHECK(begin << ".." << end);
    }
}

TEST_CASE("sparse storage pays only past the mask's bit per weight") {
  CHECK(quant::sparse_pays(4, 1000, 700));        // 2800 + 1000 < 4000
  CHECK_FALSE(quant::sparse_pays(4, 1000, 750));  // 3000 + 1000 == 4000
  CHECK_FALSE(quant::sparse_pays(1, 1000, 0));    // binary never
  CHECK(quant::sparse_pays(32, 1000, 960));       // f32: 4 % zeros pay
  Tensor w = test::gaussian_tensor({8, 64}, 1);
  CHECK(quant::sparse_mask_if_smaller(w, quant::InputAxis::Rest, 4).empty());
  w = pruned_weight({8, 64}, 1);
  const auto mask = quant::sparse_mask_if_smaller(w, quant::InputAxis::First, 4);
  REQUIRE(mask.size() == 64);
  CHECK(quant::count_kept(mask.data(), 512) == 512 - zeros_of(w));
}

TEST_CASE("sparse tensors round-trip .slm and blobs bit for bit, and a mask that disagrees is refused") {
  test::TempDir tmp;
  const Tensor w = pruned_weight({64, 48}, 5);
  Model m = test::single_node_model("MatMul", sparse_of(w, quant::InputAxis::First, *quant::parse_spec("q4").scheme,
                                                        quant::parse_spec("q4").params),
                                    {2, 64});
  slm::write_slm(m, tmp.file("s.slm"));
  const Model back = slm::read_slm(tmp.file("s.slm"));
  CHECK(*back.graph.initializers[0].tensor.quant() == *m.graph.initializers[0].tensor.quant());
  for (const auto& part : back.graph.initializers[0].tensor.quant()->parts) CHECK(part.bytes.is_view());  // mapped, not copied
  const auto bytes = blob::build_blob(m, {});
  test::write_bytes(tmp.file("s.bin"), std::string(bytes.begin(), bytes.end()));
  blob::BlobFile file(tmp.file("s.bin"));
  const Model from_blob = file.model();
  CHECK(*from_blob.graph.initializers[0].tensor.quant() == *m.graph.initializers[0].tensor.quant());
  const Tensor x = test::gaussian_tensor({2, 64}, 9);
  CHECK(runtime::Session(from_blob).run({{"x", x}}).at("y").bit_equal(runtime::Session(m).run({{"x", x}}).at("y")));

  // One more kept bit than codes: refused before any code is read.
  QuantTensor bad = *m.graph.initializers[0].tensor.quant();
  std::vector<uint8_t> mask(bad.parts.back().bytes.data(), bad.parts.back().bytes.data() + bad.parts.back().bytes.size());
  for (auto& byte : mask)
    if (byte != 0xff) {
      byte = static_cast<uint8_t>(byte | (byte + 1));  // sets the lowest clear bit
      break;
    }
  bad.parts.back().bytes = mask;
  CHECK_THROWS_WITH(quant::validate_quant_tensor(bad), Catch::Contains("part 'codes'") && Catch::Contains("does not match"));
  bad.parts.back().count -= 1;
  CHECK_THROWS_WITH(quant::validate_quant_tensor(bad), Catch::Contains("mask") && Catch::Contains("does not cover"));
}

TEST_CASE("GPTQ on a pruned weight keeps the zeros and beats zeroing after the fact") {
  const int64_t rows = 32, n = 64, count = 512;
  const Tensor w = pruned_weight({rows, n}, 7);  // [rows, n]: output channels first (Gemm transB)
  const std::vector<float> x = test::correlated_inputs(count, n, 11);
  std::vector<double> gram(static_cast<size_t>(n * n), 0.0);
  for (int64_t s = 0; s < count; ++s)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) gram[static_cast<size_t>(i * n + j)] += double(x[size_t(s * n + i)]) * x[size_t(s * n + j)];
  const quant::QuantSpec spec = quant::parse_spec("int3-g16");
  quant::GptqOptions keep, plain;
  keep.keep_zeros = true;
  int64_t r = 0, c = 0, kept = 0;
  const std::vector<float> m = quant::weight_rows(w, quant::InputAxis::Rest, r, c);
  const auto mask = quant::nonzero_mask(m.data(), r * c, kept);
  const Tensor with_keep = quant::with_sparse_mask(
      quant::quantize_weight_gptq(w, quant::InputAxis::Rest, *spec.scheme, spec.params, {}, gram.data(), 1, keep), mask);
  const Tensor zeroed_after = quant::with_sparse_mask(
      quant::quantize_weight_gptq(w, quant::InputAxis::Rest, *spec.scheme, spec.params, {}, gram.data(), 1, plain), mask);
  const Tensor a = quant::dequantize(with_keep), b = quant::dequantize(zeroed_after);
  CHECK(zeros_of(a) >= zeros_of(w));
  const double e_keep = quant::hessian_error(w.data<float>(), a.data<float>(), rows, n, gram.data(), 1);
  const double e_after = quant::hessian_error(w.data<float>(), b.data<float>(), rows, n, gram.data(), 1);
  INFO("output error: keep zeros " << e_keep << ", zeroed after " << e_after);
  CHECK(e_keep < 0.8 * e_after);
}

TEST_CASE("a pruned model packs sparse: smaller by exactly the dropped bytes, same outputs") {
  test::TempDir tmp;
  Model m = test::single_node_model("MatMul", test::gaussian_tensor({128, 96}, 2), {3, 128});
  onnx_format::write_onnx(m, tmp.file("m.onnx"));
  auto r = test::run_slmopt("prune '" + tmp.file("m.onnx") + "' -o '" + tmp.file("p.onnx") + "' --sparsity 0.5 -q");
  REQUIRE(r.exit_code == 0);
  const Model pruned = onnx_format::read_onnx(tmp.file("p.onnx"));
  const int64_t n = 128 * 96, kept = n - zeros_of(pruned.graph.initializers[0].tensor);
  CHECK(kept == n / 2);

  r = test::run_slmopt("pack '" + tmp.file("p.onnx") + "' -o '" + tmp.file("sparse.bin") + "' --json");
  REQUIRE(r.exit_code == 0);
  const auto sparse = nlohmann::json::parse(r.out);
  r = test::run_slmopt("pack '" + tmp.file("p.onnx") + "' -o '" + tmp.file("dense.bin") + "' --dense --json");
  REQUIRE(r.exit_code == 0);
  const auto dense = nlohmann::json::parse(r.out);
  const int64_t sparse_bytes = kept * 4 + (n + 7) / 8;
  CHECK(sparse["sparse_tensors"] == 1);
  CHECK(sparse["sparse_bytes_saved"] == n * 4 - sparse_bytes);
  CHECK(dense["sparse_tensors"] == 0);
  CHECK(dense["weight_bytes"].get<int64_t>() - sparse["weight_bytes"].get<int64_t>() == n * 4 - sparse_bytes);

  // inspect shows the bytes stored, and the blob runs to the pruned model's outputs exactly.
  r = test::run_slmopt("inspect '" + tmp.file("sparse.bin") + "' --json");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(nlohmann::json::parse(r.out)["tensors"][0]["bytes"] == sparse_bytes);
  const Model from_blob = blob::BlobFile(tmp.file("sparse.bin")).model();
  const Tensor x = test::gaussian_tensor({3, 128}, 4);
  CHECK(runtime::Session(from_blob).run({{"x", x}}).at("y").bit_equal(runtime::Session(pruned).run({{"x", x}}).at("y")));

  // Quantizing the pruned model stores its codes sparse too (q4: 4.5 -> 3.5 bpw).
  r = test::run_slmopt("quantize '" + tmp.file("p.onnx") + "' -o '" + tmp.file("q.slm") + "' --bits '*=q4' --json");
  REQUIRE(r.exit_code == 0);
  const double bpw_sparse = nlohmann::json::parse(r.out)["tensors"][0]["bits_per_weight"];
  r = test::run_slmopt("quantize '" + tmp.file("p.onnx") + "' -o '" + tmp.file("qd.slm") + "' --bits '*=q4' --dense --json");
  REQUIRE(r.exit_code == 0);
  const double bpw_dense = nlohmann::json::parse(r.out)["tensors"][0]["bits_per_weight"];
  CHECK(bpw_sparse == Approx(bpw_dense - 4 * 0.5 + 1).epsilon(1e-9));
  const Model q = slm::read_slm(tmp.file("q.slm"));
  const Tensor back = quant::dequantize(q.graph.initializers[0].tensor);
  CHECK(zeros_of(back) >= n - kept);
}
