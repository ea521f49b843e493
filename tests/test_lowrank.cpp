// Low-rank factorization: the factors against the matrix they stand for,
// rank selection on a known spectrum, the randomized SVD against the exact
// one, the graph rewrite of MatMul and Gemm, whitening against plain SVD,
// composition with quantize, and the CLI.
#include <Eigen/QR>
#include <cmath>
#include <nlohmann/json.hpp>

#include "calib/collector.hpp"
#include "eval/metrics.hpp"
#include "onnx/onnx_io.hpp"
#include "passes/lowrank.hpp"
#include "passes/quantize.hpp"
#include "passes/svd.hpp"
#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;
using test::correlated_inputs;
using test::gaussian_tensor;
using test::gaussian_values;

namespace {

// rows x cols with the given singular values (random orthonormal bases).
std::vector<float> with_spectrum(int64_t rows, int64_t cols, const std::vector<double>& sigma, uint32_t seed) {
  const auto k = static_cast<int64_t>(sigma.size());
  auto basis = [&](int64_t n, uint32_t s) {
    const auto g = gaussian_values(static_cast<size_t>(n * k), s);
    passes::MatrixD m(n, k);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) m(i, j) = g[static_cast<size_t>(i * k + j)];
    Eigen::HouseholderQR<passes::MatrixD> qr(m);
    return passes::MatrixD(qr.householderQ() * passes::MatrixD::Identity(n, k));
  };
  const passes::MatrixD u = basis(rows, seed), v = basis(cols, seed + 1);
  passes::MatrixD a = passes::MatrixD::Zero(rows, cols);
  for (int64_t i = 0; i < k; ++i) a += sigma[static_cast<size_t>(i)] * u.col(i) * v.col(i).transpose();
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[static_cast<size_t>(r * cols + c)] = static_cast<float>(a(r, c));
  return out;
}

std::vector<float> product(const passes::Factors& f, int64_t rows, int64_t cols) {
  std::vector<float> p(static_cast<size_t>(rows * cols), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < f.rank; ++i)
      for (int64_t c = 0; c < cols; ++c)
        p[static_cast<size_t>(r * cols + c)] += f.second[static_cast<size_t>(r * f.rank + i)] * f.first[static_cast<size_t>(i * cols + c)];
  return p;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, static_cast<double>(std::fabs(a[i] - b[i])));
  return d;
}

passes::RankRule rank_rule(const std::string& key, const std::string& value) { return passes::parse_rank_rule(key, value, "test"); }

ValueInfo f32_input(const std::string& name, std::vector<int64_t> shape) {
  std::vector<Dim> dims;
  for (auto d : shape) dims.push_back({d, {}, {}});
  return {name, DType::F32, dims, {}, {}, {}};
}

Tensor tensor_of(std::vector<int64_t> shape, const std::vector<float>& v) { return Tensor::from_values<float>(DType::F32, shape, v); }

}  // namespace

TEST_CASE("factors reproduce the matrix at full rank, and an exactly low-rank one at its rank") {
  const std::vector<float> w = gaussian_values(30 * 20, 1);
  const passes::Factors full = passes::factorize(w, 30, 20, rank_rule("rank", "20"), nullptr, 0.01, false);
  REQUIRE(full.rank == 20);
  CHECK(max_abs_diff(product(full, 30, 20), w) < 1e-5);
  CHECK(full.energy_kept == Catch::Detail::Approx(1.0));
  // Saving nothing, the pass refuses and says why.
  const passes::Factors refused = passes::factorize(w, 30, 20, rank_rule("rank", "20"));
  CHECK(refused.rank == 0);
  CHECK_THAT(refused.note, Catch::Contains("saves nothing"));
  const std::vector<float> low = with_spectrum(64, 48, {9, 7, 5, 3, 2, 1}, 2);
  const passes::Factors f = passes::factorize(low, 64, 48, rank_rule("energy", "1"));
  CHECK(f.rank == 6);
  CHECK(max_abs_diff(product(f, 64, 48), low) < 1e-5);
}

TEST_CASE("rank selection picks the documented rank") {
  // sigma^2 = 100, 49, 25, 9, 4, 1, 0.25 ... : total 188.5
  const std::vector<double> sigma = {10, 7, 5, 3, 2, 1, 0.5};
  const std::vector<float> w = with_spectrum(80, 60, sigma, 3);
  auto rank_of = [&](const std::string& key, const std::string& value) {
    return passes::factorize(w, 80, 60, rank_rule(key, value)).rank;
  };
  CHECK(rank_of("energy", "0.5") == 1);    // 100 / 188.25 = 0.531
  CHECK(rank_of("energy", "0.9") == 3);    // 174 / 188.25 = 0.924
  CHECK(rank_of("energy", "0.99") == 5);   // 187 / 188.25 = 0.9934
  CHECK(rank_of("rank", "4") == 4);
  CHECK(rank_of("rank_fraction", "0.1") == 6);  // ceil(0.1 * 60)
  CHECK(rank_of("params", "0.1") == 3);         // floor(0.1 * 80 * 60 / 140) = 3
  const passes::Factors f = passes::factorize(w, 80, 60, rank_rule("rank", "3"));
  CHECK(f.energy_kept == Catch::Detail::Approx(174.0 / 188.25).epsilon(1e-6));
  CHECK_THROWS_WITH(rank_rule("energy", "1.5"), Catch::Contains("energy"));
  CHECK_THROWS_WITH(rank_rule("rank", "0"), Catch::Contains("at least 1"));
}

TEST_CASE("the randomized SVD finds the leading singular triplets of the exact one") {
  std::vector<double> sigma;
  for (int i = 0; i < 150; ++i) sigma.push_back(std::pow(0.93, i) * 10);
  const std::vector<float> w = with_spectrum(300, 200, sigma, 4);
  passes::MatrixD a(300, 200);
  for (int64_t r = 0; r < 300; ++r)
    for (int64_t c = 0; c < 200; ++c) a(r, c) = w[static_cast<size_t>(r * 200 + c)];
  const passes::Svd exact = passes::svd_full(a);
  const passes::Svd fast = passes::svd_randomized(a, 20);
  REQUIRE(fast.s.size() == 20);
  // The last few, nearest the probes' edge, are the least exact.
  for (int i = 0; i < 20; ++i) CHECK(fast.s(i) == Catch::Detail::Approx(exact.s(i)).epsilon(i < 15 ? 1e-4 : 1e-3));
  // Same matrix, same factors.
  const passes::Svd again = passes::svd_randomized(a, 20);
  CHECK(again.u == fast.u);
  // The rank-20 approximation is as good as the exact truncation.
  const passes::MatrixD approx = fast.u * fast.s.asDiagonal() * fast.v.transpose();
  const passes::MatrixD best = exact.u.leftCols(20) * exact.s.head(20).asDiagonal() * exact.v.leftCols(20).transpose();
  CHECK((a - approx).norm() <= (a - best).norm() * (1 + 1e-4));
}

TEST_CASE("lowrank rewrites MatMul and Gemm into two products with the same outputs") {
  // x [5, 48] -> MatMul(w1 [48, 40]) -> h; h^T [40, 5] -> Gemm(transA, w2 [32, 40] transB, bias, alpha, beta) -> y
  Model m;
  m.opsets = {{"", 13}};
  m.graph.inputs = {f32_input("x", {5, 48})};
  m.graph.outputs = {{"y", DType::F32, std::nullopt, {}, {}, {}}};
  const std::vector<float> w1 = with_spectrum(40, 48, {5, 4, 3, 2}, 5);  // rows: outputs
  std::vector<float> w1_kn(w1.size());
  for (int64_t k = 0; k < 48; ++k)
    for (int64_t n = 0; n < 40; ++n) w1_kn[static_cast<size_t>(k * 40 + n)] = w1[static_cast<size_t>(n * 48 + k)];
  Attribute alpha;
  alpha.name = "alpha";
  alpha.type = AttrType::Float;
  alpha.f = 0.5f;
  Attribute beta = alpha;
  beta.name = "beta";
  beta.f = 2.0f;
  m.graph.initializers = {{"w1", tensor_of({48, 40}, w1_kn), {}},
                          {"w2", tensor_of({32, 40}, with_spectrum(32, 40, {3, 2, 1}, 6)), {}},
                          {"b2", gaussian_tensor({32}, 7), {}}};
  m.graph.nodes = {{"mm", "MatMul", "", {"x", "w1"}, {"h"}, {}, {}},
                   {"tr", "Transpose", "", {"h"}, {"ht"}, {}, {}},
                   {"gemm", "Gemm", "", {"ht", "w2", "b2"}, {"y"},
                    {Attribute::integer("transA", 1), Attribute::integer("transB", 1), alpha, beta}, {}}};
  passes::LowrankConfig c;
  c.rank = rank_rule("energy", "1");
  c.min_elements = 0;
  passes::LowrankReport report;
  const Model f = passes::lowrank_model(m, c, report);
  REQUIRE(report.tensors.size() == 2);
  CHECK(report.tensors[0].rank == 4);
  CHECK(report.tensors[1].rank == 3);
  CHECK(report.params_after == 4 * (48 + 40) + 3 * (32 + 40));
  CHECK(!f.graph.find_initializer("w1"));
  CHECK(f.graph.find_initializer("w1_lr_in")->tensor.shape() == std::vector<int64_t>{48, 4});
  CHECK(f.graph.find_initializer("w1_lr_out")->tensor.shape() == std::vector<int64_t>{4, 40});
  const Tensor x = gaussian_tensor({5, 48}, 8);
  const Tensor y0 = runtime::Session(m).run({{"x", x}}).at("y");
  const Tensor y1 = runtime::Session(f).run({{"x", x}}).at("y");
  CHECK(eval::compare_tensors(y0, y1)["rel_l2"] < 1e-5);
  // The rewritten graph is valid ONNX and reads back the same.
  test::TempDir tmp;
  onnx_format::write_onnx(f, tmp.file("f.onnx"));
  const Tensor y2 = runtime::Session(onnx_format::read_onnx(tmp.file("f.onnx"))).run({{"x", x}}).at("y");
  CHECK(eval::compare_tensors(y0, y2)["rel_l2"] < 1e-5);
  // The factors are weights like any other: quantize takes them.
  passes::QuantizeConfig q;
  q.default_spec = "int8-ch";
  q.min_elements = 0;
  passes::QuantizeReport qr;
  const Model fq = passes::quantize_model(f, q, qr);
  int factors = 0;
  for (const auto& t : qr.tensors) factors += t.name.find("_lr_") != std::string::npos && t.action == "int8-ch";
  CHECK(factors == 4);
  CHECK(eval::compare_tensors(y0, runtime::Session(fq).run({{"x", x}}).at("y"))["cosine"] > 0.999);
}

TEST_CASE("whitening by the inputs' X^T X lowers the output error at the same rank") {
  Model m;
  m.opsets = {{"", 13}};
  m.graph.inputs = {f32_input("x", {60, 96})};
  m.graph.outputs = {{"y", DType::F32, std::nullopt, {}, {}, {}}};
  m.graph.initializers = {{"w", gaussian_tensor({96, 80}, 9), {}}};
  m.graph.nodes = {{"mm", "MatMul", "", {"x", "w"}, {"y"}, {}, {}}};
  std::vector<calib::Sample> samples;
  for (uint32_t i = 0; i < 6; ++i)
    samples.push_back({{"x", tensor_of({60, 96}, correlated_inputs(60, 96, 50 + i))}});
  const calib::CalibStats stats = calib::collect_stats(m, samples, {});
  for (const char* rank : {"8", "16", "32"}) {
    std::map<std::string, double> err;
    for (const char* method : {"svd", "whiten"}) {
      passes::LowrankConfig c;
      c.rank = rank_rule("rank", rank);
      c.method = method;
      c.stats = &stats;
      c.min_elements = 0;
      passes::LowrankReport r;
      passes::lowrank_model(m, c, r);
      REQUIRE(r.tensors.at(0).rank == std::stoll(rank));
      err[method] = r.tensors[0].output_error;
      WARN("rank " << rank << " " << method << ": output error " << err[method] << ", weight error "
                   << r.tensors[0].relative_error);
    }
    CHECK(err["whiten"] < err["svd"]);
  }
}

TEST_CASE("slmopt lowrank: options, JSON report and clear errors") {
  test::TempDir tmp;
  Model m;
  m.opsets = {{"", 13}};
  m.graph.inputs = {f32_input("x", {2, 64})};
  m.graph.outputs = {{"y", DType::F32, std::nullopt, {}, {}, {}}};
  m.graph.initializers = {{"fc1", tensor_of({64, 64}, with_spectrum(64, 64, {4, 3, 2, 1, 0.1, 0.05}, 10)), {}},
                          {"fc2", gaussian_tensor({64, 64}, 11), {}}};
  m.graph.nodes = {{"a", "MatMul", "", {"x", "fc1"}, {"h"}, {}, {}}, {"b", "MatMul", "", {"h", "fc2"}, {"y"}, {}, {}}};
  onnx_format::write_onnx(m, tmp.file("m.onnx"));
  auto r = test::run_slmopt("lowrank '" + tmp.file("m.onnx") + "' -o '" + tmp.file("l.onnx") +
                            "' --rules 'fc1=0.99' --rank 8 --min-elements 0 --json");
  REQUIRE(r.exit_code == 0);
  const auto doc = nlohmann::json::parse(r.out);
  REQUIRE(doc["tensors"].size() == 2);
  CHECK(doc["tensors"][0]["rank"] == 4);  // 30 of 30.3 energy: sigma 4, 3, 2, 1
  CHECK(doc["tensors"][1]["rank"] == 8);
  CHECK(doc["params_after"] == 4 * 128 + 8 * 128);
  CHECK(onnx_format::read_onnx(tmp.file("l.onnx")).graph.nodes.size() == 4);
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"--rank 4 --energy 0.9", "give one of"},
           {"--method whiten", "needs calibration data"},
           {"--energy 2", "energy"},
           {"--rules 'fc*=0'", "at least 1"}}) {
    INFO(args);
    r = test::run_slmopt("lowrank '" + tmp.file("m.onnx") + "' -o '" + tmp.file("bad.onnx") + "' " + args);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(message));
    CHECK(!std::filesystem::exists(tmp.file("bad.onnx")));
  }
}
