// The packed sgemm against its plain reference, for every micro-kernel this
// CPU runs, every operand layout and the block edges.
#include <omp.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "runtime/kernels/matmul.hpp"
#include "runtime/kernels/sgemm.hpp"
#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;
using runtime::MatrixView;

namespace {

struct Operands {
  int64_t m, n, k;
  bool ta, tb;
  std::vector<float> a, b, c0;
  MatrixView va() const { return ta ? runtime::transposed_view(a.data(), m) : runtime::row_major(a.data(), k); }
  MatrixView vb() const { return tb ? runtime::transposed_view(b.data(), k) : runtime::row_major(b.data(), n); }
};

Operands random_operands(int64_t m, int64_t n, int64_t k, bool ta, bool tb, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  Operands o{m, n, k, ta, tb, std::vector<float>(static_cast<size_t>(m * k)), std::vector<float>(static_cast<size_t>(k * n)),
             std::vector<float>(static_cast<size_t>(m * n))};
  for (auto* v : {&o.a, &o.b, &o.c0})
    for (auto& x : *v) x = u(rng);
  return o;
}

// |error| within a few float roundings of the sum of |a||b| (the reference sums in double).
void check_close(const Operands& o, const std::vector<float>& got, const std::vector<float>& want, bool accumulate) {
  for (int64_t i = 0; i < o.m; ++i)
    for (int64_t j = 0; j < o.n; ++j) {
      double magnitude = accumulate ? std::abs(o.c0[static_cast<size_t>(i * o.n + j)]) : 0.0;
      for (int64_t p = 0; p < o.k; ++p) magnitude += std::abs(o.va().at(i, p) * o.vb().at(p, j));
      const size_t at = static_cast<size_t>(i * o.n + j);
      INFO("m " << o.m << " n " << o.n << " k " << o.k << " at " << i << "," << j);
      REQUIRE(std::abs(got[at] - want[at]) <= 4e-7 * (magnitude + 1) * std::sqrt(double(o.k + 1)));
    }
}

}  // namespace

TEST_CASE("every sgemm micro-kernel matches the reference product in every layout and at every block edge") {
  // Edges of the 8x32, 6x16, 4x16 tiles, k past one 256-deep block, n past one 2048-wide block.
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes = {
      {1, 1, 1}, {7, 13, 5}, {8, 32, 16}, {9, 33, 17}, {6, 16, 300}, {13, 47, 513}, {64, 96, 64},
      {200, 70, 40}, {5, 2100, 9}, {0, 5, 3}, {4, 0, 3}, {3, 4, 0}};
  int kernels_run = 0;
  for (const auto& kernel : runtime::sgemm_kernels()) {
    if (!kernel.supported()) continue;
    ++kernels_run;
    uint32_t seed = 1;
    for (const auto& [m, n, k] : shapes)
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (bool accumulate : {false, true}) {
            const Operands o = random_operands(m, n, k, ta, tb, seed++);
            std::vector<float> got = o.c0, want = o.c0;
            runtime::sgemm_with(kernel, m, n, k, o.va(), o.vb(), got.data(), n, accumulate);
            runtime::sgemm_reference(m, n, k, o.va(), o.vb(), want.data(), n, accumulate);
            INFO("kernel " << kernel.name << " ta " << ta << " tb " << tb << " accumulate " << accumulate);
            check_close(o, got, want, accumulate);
          }
  }
  CHECK(kernels_run >= 1);
  // The portable kernel is last and runs everywhere.
  CHECK(std::string(runtime::sgemm_kernels().back().name) == "portable");
}

TEST_CASE("sgemm results do not depend on the thread count, and the x86 kernels agree bit for bit") {
  const Operands o = random_operands(150, 700, 600, false, true, 7);
  auto run = [&](const runtime::SgemmKernel& kernel, int threads) {
    std::vector<float> c(static_cast<size_t>(o.m * o.n));
    omp_set_num_threads(threads);
    runtime::sgemm_with(kernel, o.m, o.n, o.k, o.va(), o.vb(), c.data(), o.n);
    return c;
  };
  const int saved = omp_get_max_threads();
  const auto& kernel = runtime::sgemm_kernel();
  const auto one = run(kernel, 1), two = run(kernel, 2);
  CHECK(one == two);
  // AVX-512 and AVX2 do the same fused multiply-adds in the same order.
  const runtime::SgemmKernel* avx512 = nullptr;
  const runtime::SgemmKernel* avx2 = nullptr;
  for (const auto& k : runtime::sgemm_kernels()) {
    if (std::string(k.name) == "avx512" && k.supported()) avx512 = &k;
    if (std::string(k.name) == "avx2" && k.supported()) avx2 = &k;
  }
  if (avx512 && avx2) CHECK(run(*avx512, 2) == run(*avx2, 1));
  else WARN("this CPU lacks AVX-512 or AVX2: the kernels' agreement is not checked");
  omp_set_num_threads(saved);
}

TEST_CASE("float_matmul takes matrix-vector shapes through Eigen and agrees with the reference") {
  for (const auto& [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 300, 70}, {3, 5, 9}, {40, 1, 33}, {2, 2, 2}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (bool accumulate : {false, true}) {
          const Operands o = random_operands(m, n, k, ta, tb, 99);
          std::vector<float> got = o.c0, want = o.c0;
          runtime::float_matmul(m, n, k, o.va(), o.vb(), got.data(), n, accumulate);
          runtime::sgemm_reference(m, n, k, o.va(), o.vb(), want.data(), n, accumulate);
          check_close(o, got, want, accumulate);
        }
}

namespace {

// Conv by its definition: every output a sum over channels and kernel positions (1-D or 2-D, no padding).
std::vector<float> direct_conv(const Tensor& x, const Tensor& w, const std::vector<int64_t>& strides,
                               const std::vector<int64_t>& dilations) {
  const auto& xs = x.shape();
  const auto& ws = w.shape();
  const bool two_d = xs.size() == 4;
  const int64_t C = xs[1], H = two_d ? xs[2] : 1, W = xs.back(), M = ws[0], KH = two_d ? ws[2] : 1, KW = ws.back();
  const int64_t sh = two_d ? strides[0] : 1, sw = strides.back(), dh = two_d ? dilations[0] : 1, dw = dilations.back();
  const int64_t OH = (H - (KH - 1) * dh - 1) / sh + 1, OW = (W - (KW - 1) * dw - 1) / sw + 1;
  std::vector<float> out(static_cast<size_t>(M * OH * OW));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double sum = 0;
        for (int64_t c = 0; c < C; ++c)
          for (int64_t kh = 0; kh < KH; ++kh)
            for (int64_t kw = 0; kw < KW; ++kw)
              sum += double(x.data<float>()[(c * H + oh * sh + kh * dh) * W + ow * sw + kw * dw]) *
                     w.data<float>()[((m * C + c) * KH + kh) * KW + kw];
        out[static_cast<size_t>((m * OH + oh) * OW + ow)] = static_cast<float>(sum);
      }
  return out;
}

}  // namespace

TEST_CASE("Conv reads the input in place when the im2col matrix is a view of it: pointwise, 1-D, k x 1 kernels") {
  struct Case {
    std::vector<int64_t> x, w, strides, dilations;
    bool direct;
  };
  const Case cases[] = {
      {{1, 5, 7, 9}, {6, 5, 1, 1}, {1, 1}, {1, 1}, true},    // pointwise 2-D
      {{1, 4, 30}, {3, 4, 1}, {1}, {1}, true},               // pointwise 1-D
      {{1, 1, 2000}, {17, 1, 64}, {20}, {1}, true},          // an STFT's frames
      {{1, 1, 300}, {5, 1, 7}, {3}, {2}, true},              // strided and dilated
      {{1, 1, 50}, {2, 1, 1}, {3}, {1}, true},               // a 1-wide kernel with stride 3
      {{1, 1, 7, 9}, {3, 1, 1, 1}, {2, 1}, {1, 1}, false},   // strided pointwise: im2col
      {{1, 3, 40}, {4, 3, 5}, {2}, {1}, true},               // 1-D, several channels: a view per kernel position
      {{1, 6, 10, 8}, {5, 6, 3, 1}, {1, 1}, {1, 1}, true},   // 3 x 1: output rows follow the input rows
      {{1, 6, 12, 5}, {4, 6, 3, 1}, {1, 1}, {2, 1}, true},   // dilated 3 x 1
      {{1, 3, 3, 12}, {4, 3, 3, 2}, {1, 2}, {1, 1}, true},   // one output row, strided columns
      {{1, 4, 9, 7}, {3, 4, 3, 3}, {1, 1}, {1, 1}, false},   // 3 x 3: output rows narrower, im2col
  };
  uint32_t seed = 3;
  for (const auto& cs : cases) {
    Model m = test::single_node_model("Conv", test::gaussian_tensor(cs.w, seed++));
    m.graph.nodes[0].attributes.push_back(Attribute::integers("strides", cs.strides));
    m.graph.nodes[0].attributes.push_back(Attribute::integers("dilations", cs.dilations));
    const Tensor x = test::gaussian_tensor(cs.x, seed++);
    const runtime::Session session(m);
    runtime::RunStats stats;
    const Tensor y = session.run({{"x", x}}, &stats).at("y");
    const auto want = direct_conv(x, m.graph.initializers[0].tensor, cs.strides, cs.dilations);
    REQUIRE(static_cast<size_t>(y.numel()) == want.size());
    for (size_t i = 0; i < want.size(); ++i) CHECK(y.data<float>()[i] == Approx(want[i]).margin(1e-4));
    // No im2col columns when the input is read in place.
    CHECK((stats.peak_scratch_bytes == 0) == cs.direct);
    // The second run reuses the weights packed by the first.
    const Tensor again = session.run({{"x", x}}).at("y");
    CHECK(std::equal(y.data<float>(), y.data<float>() + y.numel(), again.data<float>()));
  }
}

TEST_CASE("operands packed once give the same bits as packing them in every product") {
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes = {
      {7, 13, 5}, {9, 33, 17}, {200, 70, 300}, {13, 2100, 9}, {64, 96, 513}};
  for (const auto& kernel : runtime::sgemm_kernels()) {
    if (!kernel.supported()) continue;
    uint32_t seed = 40;
    for (const auto& [m, n, k] : shapes)
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          const Operands o = random_operands(m, n, k, ta, tb, seed++);
          std::vector<float> want = o.c0;
          runtime::sgemm_with(kernel, m, n, k, o.va(), o.vb(), want.data(), n, true);
          const auto pa = runtime::pack_once(kernel, runtime::Operand::A, m, k, o.va());
          const auto pb = runtime::pack_once(kernel, runtime::Operand::B, n, k, o.vb());
          INFO("kernel " << kernel.name << " m " << m << " n " << n << " k " << k << " ta " << ta << " tb " << tb);
          for (int which = 1; which <= 3; ++which) {
            std::vector<float> got = o.c0;
            runtime::sgemm_prepacked(m, n, k, o.va(), which & 1 ? &pa : nullptr, o.vb(), which & 2 ? &pb : nullptr,
                                     got.data(), n, true);
            CHECK(got == want);
          }
        }
  }
  // A packed operand of another shape is a bug, not a wrong answer.
  const Operands o = random_operands(8, 8, 8, false, false, 1);
  const auto pa = runtime::pack_once(runtime::sgemm_kernel(), runtime::Operand::A, 8, 7, o.va());
  std::vector<float> c(64);
  CHECK_THROWS(runtime::sgemm_prepacked(8, 8, 8, o.va(), &pa, o.vb(), nullptr, c.data(), 8));
}

TEST_CASE("a session packs only operands inside initializers, once, within its budget") {
  Model m = test::single_node_model("Conv", test::gaussian_tensor({4, 3, 1, 1}, 9));
  const runtime::Session session(m);
  const float* w = m.graph.initializers[0].tensor.data<float>();
  const auto a = runtime::row_major(w, 3);
  const auto* packed = session.packed_constant(a, runtime::Operand::A, 4, 3);
  REQUIRE(packed != nullptr);
  CHECK(session.packed_constant(a, runtime::Operand::A, 4, 3) == packed);              // found, not packed again
  CHECK(session.packed_constant(a, runtime::Operand::B, 4, 4) == nullptr);  // 4 x 4 from 12 floats: past the end
  CHECK(session.packed_constant(runtime::row_major(w + 1, 3), runtime::Operand::A, 4, 3) == nullptr);
  std::vector<float> elsewhere(12, 1.0f);
  CHECK(session.packed_constant(runtime::row_major(elsewhere.data(), 3), runtime::Operand::A, 4, 3) == nullptr);
  // Its panels are the weight's, zero-padded to whole panels.
  const auto fresh = runtime::pack_once(runtime::sgemm_kernel(), runtime::Operand::A, 4, 3, a);
  CHECK(packed->panels == fresh.panels);
}

TEST_CASE("Gemm with a constant transposed B (packed once) matches the reference on every run") {
  const int64_t m = 37, k = 300, n = 45;
  Model model = test::single_node_model("Gemm", test::gaussian_tensor({n, k}, 11));
  model.graph.nodes[0].attributes.push_back(Attribute::integer("transB", 1));
  const Tensor x = test::gaussian_tensor({m, k}, 12);
  const runtime::Session session(model);
  const Tensor first = session.run({{"x", x}}).at("y");
  const Tensor second = session.run({{"x", x}}).at("y");
  const Tensor& w = model.graph.initializers[0].tensor;
  std::vector<float> want(static_cast<size_t>(m * n));
  runtime::sgemm_reference(m, n, k, runtime::row_major(x.data<float>(), k), runtime::transposed_view(w.data<float>(), k),
                           want.data(), n);
  REQUIRE(first.numel() == m * n);
  for (size_t i = 0; i < want.size(); ++i) CHECK(first.data<float>()[i] == Approx(want[i]).margin(1e-4));
  CHECK(std::equal(first.data<float>(), first.data<float>() + m * n, second.data<float>()));
}
