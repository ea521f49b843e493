// Quantization schemes: bit packing, every scheme's layout and error, the
// spec grammar and its errors, hostile parts, and the runtime's kernels on
// quantized weights against "dequantize, then the float kernel".
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/quant_tensor.hpp"
#include "quant/bitpack.hpp"
#include "quant/quantize_weight.hpp"
#include "quant/scheme_families.hpp"
#include "quant/sparse.hpp"
#include "quant/spec.hpp"
#include "runtime/kernels/quantized.hpp"
#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;

namespace {

Tensor gaussian(std::vector<int64_t> shape, uint32_t seed) {
  Tensor t(DType::F32, std::move(shape));
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = dist(rng);
  return t;
}

using test::relative_error;

Tensor quantize(const Tensor& w, const std::string& spec_text, bool search = true,
                quant::InputAxis axis = quant::InputAxis::Rest) {
  const auto spec = quant::parse_spec(spec_text);
  quant::QuantizeOptions o;
  o.search = search;
  return quant::quantize_weight(w, axis, *spec.scheme, spec.params, o);
}

}  // namespace

TEST_CASE("bit packing round-trips every width") {
  std::mt19937 rng(7);
  for (int bits = 1; bits <= 16; ++bits) {
    const int64_t n = 1000 + bits;
    std::vector<uint32_t> codes(static_cast<size_t>(n));
    for (auto& c : codes) c = rng() & ((1u << bits) - 1);
    quant::BitWriter w(n, bits);
    for (auto c : codes) w.put(c);
    const auto bytes = w.take();
    REQUIRE(bytes.size() == quant::packed_bytes(n, bits));
    std::vector<uint32_t> back(static_cast<size_t>(n));
    quant::read_codes(bytes.data(), 0, n, bits, back.data());
    CHECK(back == codes);
    for (int64_t i = 3; i < n; i += 97) CHECK(quant::read_code(bytes.data(), i, bits) == codes[static_cast<size_t>(i)]);
  }
}

TEST_CASE("every scheme: exact layout, bits per weight and bounded error on ragged rows") {
  // 77 columns: groups of 16 or 32 leave a shorter last group.
  const Tensor w = gaussian({9, 77}, 1);
  struct Case {
    const char* spec;
    double max_rel;
  };
  const Case cases[] = {
      {"int8-g32", 0.01},      {"int8-ch", 0.02},         {"int8-tensor", 0.03},     {"int4-g16", 0.12},
      {"int4-g32-asym", 0.12}, {"int4-g32-asym-k6x64", 0.13}, {"int6-g16-k8x64", 0.04}, {"int3-g16-k6x32", 0.25},
      {"int2-g16-asym-k4x32", 0.4}, {"int1-g32-asym", 1.5}, {"ternary-g32", 0.6},    {"binary-g32", 0.7},
      {"nf4-g32", 0.12},       {"nf3-g16", 0.25},         {"lut4-g32", 0.12},        {"lut3-g32-k6x64", 0.25},
      {"int5-g32-f32", 0.06},  {"tcq4-ch", 0.1},          {"tcq3-ch-f32", 0.2},      {"tcq2-ch", 0.4},
      {"ec4-ch", 0.1},         {"ec6-ch", 0.03},          {"ec2-ch", 0.35},          {"ec1-ch", 0.8},
  };
  for (const auto& c : cases) {
    INFO(c.spec);
    for (bool search : {false, true}) {
      const Tensor q = quantize(w, c.spec, search);
      REQUIRE(q.is_quantized());
      const QuantTensor& qt = *q.quant();
      CHECK_NOTHROW(quant::validate_quant_tensor(qt));
      const auto spec = quant::parse_spec(c.spec);
      // Entropy-coded streams are as long as their codes need; the layout plans
      // with the length Gaussian weights need.
      if (spec.scheme->check) CHECK(std::abs(qt.bits_per_weight() - quant::layout_bits_per_weight(*spec.scheme, spec.params, 9, 77)) < 0.5);
      else CHECK(qt.bits_per_weight() == quant::layout_bits_per_weight(*spec.scheme, spec.params, 9, 77));
      const Tensor back = quant::dequantize(q);
      CHECK(back.shape() == w.shape());
      CHECK(relative_error(w, back) < c.max_rel);
      // Same input, same bytes.
      CHECK(quantize(w, c.spec, search).bit_equal(q));
    }
  }
}

TEST_CASE("the int, table and ec decoders' fast paths equal their plain references bit for bit") {
  // 4- and 8-bit layouts the fast paths take (one and two levels, symmetric
  // or not, f16/f32 scales, groups that do not divide the row; fixed and
  // fitted tables) and ones they leave to the reference (odd rows at 4 bits,
  // other widths, per tensor); Huffman codewords looked up and, at 8 bits,
  // longer than the lookup table.
  const char* specs[] = {"q4",         "q8",          "int4-g32",         "int4-g16-asym", "int8-g64-asym-k6",
                         "int4-ch",    "int4-g64-k6", "int8-g32-f32",     "int4-g32-asym-f32", "int4-g7",
                         "int4-k5x64", "q5",          "int3-g32-asym-k6", "int4-tensor",   "nf4",
                         "q4n",        "lut4-g64",    "nf4-k6",           "nf4-g7",        "nf3",
                         "lut4-tensor", "ec4-ch",     "ec2-ch",           "ec8-ch"};
  for (const int64_t cols : {int64_t{64}, int64_t{172}, int64_t{31}}) {
    const Tensor w = gaussian({9, cols}, static_cast<uint32_t>(cols));
    for (const char* spec : specs) {
      INFO(spec << " on rows of " << cols);
      const Tensor q = quantize(w, spec);
      const QuantTensor& qt = *q.quant();
      const quant::Scheme& scheme = *quant::parse_spec(spec).scheme;
      REQUIRE(quant::reference_decoder(scheme) != scheme.dequantize);
      std::vector<float> fast(static_cast<size_t>(w.numel())), plain(fast.size(), -1.0f);
      scheme.dequantize(qt, 2, 9, fast.data());  // from a row inside, as row blocks are read
      quant::reference_decoder(scheme)(qt, 2, 9, plain.data());
      CHECK(std::memcmp(fast.data(), plain.data(), static_cast<size_t>(7 * cols) * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("the search never loses to round-to-nearest and counts bits exactly") {
  const Tensor w = gaussian({64, 256}, 2);
  for (const char* spec : {"int4-g32", "int4-g32-asym-k6", "int3-g16-k6", "int2-g16-asym-k4", "ternary-g64", "nf4-g64",
                           "lut4-g32-k6x512"}) {
    INFO(spec);
    CHECK(relative_error(w, quant::dequantize(quantize(w, spec, true))) <=
          relative_error(w, quant::dequantize(quantize(w, spec, false))) + 1e-9);
  }
  // 4 + 6/32 + 6/32 + 2 * 16/256 bits per weight, as llama.cpp's Q4_K.
  CHECK(quantize(w, "q4").quant()->bits_per_weight() == 4.5);
  CHECK(quantize(w, "q2").quant()->bits_per_weight() == 2.625);
  // Five ternary codes a byte: 1.6 bits, plus the last partial byte.
  CHECK(quantize(w, "ternary-g64").quant()->storage_bits() == (64 * 256 + 4) / 5 * 8 + 16 * 256);
}

TEST_CASE("importance weights move the error to unimportant columns") {
  const Tensor w = gaussian({32, 128}, 3);
  std::vector<float> importance(128, 1.0f);
  for (int c = 0; c < 16; ++c) importance[static_cast<size_t>(c)] = 100.0f;
  const auto spec = quant::parse_spec("int3-g64");
  quant::QuantizeOptions plain, weighted;
  plain.search = weighted.search = true;
  weighted.importance = importance.data();
  auto column_error = [&](const Tensor& q) {
    const Tensor back = quant::dequantize(q);
    double e = 0;
    for (int r = 0; r < 32; ++r)
      for (int c = 0; c < 16; ++c) {
        const double d = w.data<float>()[r * 128 + c] - back.data<float>()[r * 128 + c];
        e += d * d;
      }
    return e;
  };
  const double e_plain = column_error(quant::quantize_weight(w, quant::InputAxis::Rest, *spec.scheme, spec.params, plain));
  const double e_weighted =
      column_error(quant::quantize_weight(w, quant::InputAxis::Rest, *spec.scheme, spec.params, weighted));
  CHECK(e_weighted < 0.9 * e_plain);
}

TEST_CASE("spec errors name the problem") {
  auto message = [](const std::string& text) {
    try {
      quant::parse_spec(text);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(message("float4"), Catch::Contains("unknown scheme 'float'"));
  CHECK_THAT(message("int9"), Catch::Contains("bits must be 1 to 8, got 9"));
  CHECK_THAT(message("int0"), Catch::Contains("bits must be 1 to 8, got 0"));
  CHECK_THAT(message("int"), Catch::Contains("needs a bit width"));
  CHECK_THAT(message("int4-g0"), Catch::Contains("group size must be a positive integer"));
  CHECK_THAT(message("int4-g32-k6x48"), Catch::Contains("must be a multiple"));
  CHECK_THAT(message("int4-k6-ch"), Catch::Contains("two-level scales need a group size"));
  CHECK_THAT(message("int4-zz"), Catch::Contains("unknown field 'zz'"));
  CHECK_THAT(message("nf5"), Catch::Contains("3 or 4 bits"));
  CHECK_THAT(message("int1"), Catch::Contains("single level"));
  CHECK(quant::format_spec(quant::parse_spec("q4")) == "int4-g32-asym-k6");
  for (const auto& p : quant::presets()) CHECK(quant::format_spec(quant::parse_spec(p.name)) == p.spec);
}

TEST_CASE("parts that do not match their scheme are rejected before any read") {
  const Tensor q = quantize(gaussian({4, 64}, 4), "int4-g32-asym-k6x64");
  QuantTensor bad = *q.quant();
  bad.parts[0].bytes = std::vector<uint8_t>(bad.parts[0].bytes.data(), bad.parts[0].bytes.data() + bad.parts[0].bytes.size() - 1);
  CHECK_THROWS_WITH(quant::validate_quant_tensor(bad), Catch::Contains("does not match"));
  bad = *q.quant();
  bad.parts[1].count += 1;
  CHECK_THROWS_AS(quant::validate_quant_tensor(bad), Error);
  bad = *q.quant();
  bad.parts.pop_back();
  CHECK_THROWS_WITH(quant::validate_quant_tensor(bad), Catch::Contains("parts"));
  bad = *q.quant();
  bad.scheme = "nope";
  CHECK_THROWS_WITH(quant::validate_quant_tensor(bad), Catch::Contains("unknown quantization scheme"));
}

TEST_CASE("quantized weights in MatMul, Gemm and Gather equal dequantize-then-float") {
  const Tensor x = gaussian({3, 5, 40}, 5);
  const Tensor w = gaussian({40, 24}, 6);  // MatMul B [K, N]
  for (const char* spec : {"int4-g16", "q4", "ternary-g32", "lut3-g16", "int8-ch"}) {
    INFO(spec);
    const Tensor q = quantize(w, spec, true, quant::InputAxis::First);
    const Tensor deq = quant::dequantize(q);
    auto run = [&](const Tensor& weight) {
      Model m;
      m.opsets = {{"", 21}};
      m.graph.inputs = {{"x", DType::F32, std::nullopt, {}, {}, {}}};
      m.graph.outputs = {{"y", DType::F32, std::nullopt, {}, {}, {}}};
      m.graph.initializers = {{"w", weight, {}}};
      m.graph.nodes = {{"mm", "MatMul", "", {"x", "w"}, {"y"}, {}, {}}};
      runtime::Session s(m);
      return s.run({{"x", x}}).at("y");
    };
    const Tensor yq = run(q), yf = run(deq);
    REQUIRE(yq.shape() == std::vector<int64_t>{3, 5, 24});
    for (int64_t i = 0; i < yq.numel(); ++i)
      CHECK(yq.data<float>()[i] == Approx(yf.data<float>()[i]).margin(1e-5).epsilon(1e-5));
    // The block-wise kernel against the plain reference.
    std::vector<float> c1(15 * 24), c2(15 * 24);
    runtime::matmul_quantized_rows(x.data<float>(), 15, *q.quant(), c1.data());
    runtime::matmul_quantized_reference(x.data<float>(), 15, *q.quant(), c2.data());
    for (size_t i = 0; i < c1.size(); ++i) CHECK(c1[i] == Approx(c2[i]).margin(1e-5).epsilon(1e-5));
  }
  // Gemm with transB (weight [N, K]) and a bias; Gather from a quantized table.
  const Tensor wt = gaussian({24, 40}, 7), a = gaussian({6, 40}, 8), bias = gaussian({24}, 9);
  // Rows out of order, repeated and negative: a sparse table is still read in one pass.
  Tensor ids(DType::I64, {6});
  const int64_t id_values[] = {7, 0, -3, 7, 14, 20};
  std::copy(std::begin(id_values), std::end(id_values), ids.mutable_data<int64_t>());
  auto run2 = [&](const Tensor& weight) {
    Model m;
    m.opsets = {{"", 21}};
    m.graph.inputs = {{"a", DType::F32, std::nullopt, {}, {}, {}}, {"ids", DType::I64, std::nullopt, {}, {}, {}}};
    m.graph.outputs = {{"y", DType::F32, std::nullopt, {}, {}, {}}, {"e", DType::F32, std::nullopt, {}, {}, {}}};
    m.graph.initializers = {{"w", weight, {}}, {"b", bias, {}}};
    Attribute tb;
    tb.name = "transB";
    tb.i = 1;
    Attribute alpha;
    alpha.name = "alpha";
    alpha.type = AttrType::Float;
    alpha.f = 0.5f;
    m.graph.nodes = {{"gemm", "Gemm", "", {"a", "w", "b"}, {"y"}, {tb, alpha}, {}},
                     {"gather", "Gather", "", {"w", "ids"}, {"e"}, {}, {}}};
    runtime::Session s(m);
    return s.run({{"a", a}, {"ids", ids}});
  };
  // Dense, and a third of the weights pruned and stored sparse (decoded in place).
  Tensor pruned = wt;
  for (int64_t i = 0; i < pruned.numel(); i += 3) pruned.mutable_data<float>()[i] = 0.0f;
  int64_t kept = 0;
  for (const Tensor& qt : {quantize(wt, "q5"), quant::with_sparse_mask(quantize(pruned, "q5"),
                                                                       quant::nonzero_mask(pruned.data<float>(),
                                                                                           pruned.numel(), kept))}) {
    INFO("sparse " << quant::is_sparse(*qt.quant()));
    auto rq = run2(qt), rf = run2(quant::dequantize(qt));
    for (const char* name : {"y", "e"}) {
      INFO(name);
      REQUIRE(rq.at(name).shape() == rf.at(name).shape());
      for (int64_t i = 0; i < rq.at(name).numel(); ++i)
        CHECK(rq.at(name).data<float>()[i] == Approx(rf.at(name).data<float>()[i]).margin(1e-5).epsilon(1e-5));
    }
    // Gather copies rows exactly.
    CHECK(rq.at("e").bit_equal(rf.at("e")));
  }
}
