// Pruning: exact sparsity per rule, N:M patterns, masks against a plain
// sort, SparseGPT against the explicit inverse-Hessian (OBS) reference, the
// calibrated methods against magnitude, and the CLI.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>

#include "calib/collector.hpp"
#include "calib/gram.hpp"
#include "calib/npy.hpp"
#include "eval/metrics.hpp"
#include "onnx/onnx_io.hpp"
#include "passes/channel_groups.hpp"
#include "passes/prune.hpp"
#include "passes/sparsegpt.hpp"
#include "passes/sparsity.hpp"
#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;
using test::correlated_inputs;
using test::gaussian_tensor;
using test::gaussian_values;

namespace {

ValueInfo f32_input(const std::string& name, std::vector<int64_t> shape) {
  std::vector<Dim> dims;
  for (auto d : shape) dims.push_back({d, {}, {}});
  return {name, DType::F32, dims, {}, {}, {}};
}

// x [4, 64] -> MatMul(attn_w [64, 48]) -> Relu -> Gemm(fc_w [40, 48] transB, fc_b) -> y
//   and a Conv branch: img [1, 8, 6, 6] -> Conv(conv_w [16, 8, 3, 3]) -> z
Model three_layer_model() {
  Model m;
  m.opsets = {{"", 13}};
  m.graph.inputs = {f32_input("x", {4, 64}), f32_input("img", {1, 8, 6, 6})};
  m.graph.outputs = {{"y", DType::F32, std::nullopt, {}, {}, {}}, {"z", DType::F32, std::nullopt, {}, {}, {}}};
  m.graph.initializers = {{"attn_w", gaussian_tensor({64, 48}, 1), {}},
                          {"fc_w", gaussian_tensor({40, 48}, 2), {}},
                          {"fc_b", gaussian_tensor({40}, 3), {}},
                          {"conv_w", gaussian_tensor({16, 8, 3, 3}, 4), {}}};
  m.graph.nodes = {{"attn", "MatMul", "", {"x", "attn_w"}, {"h"}, {}, {}},
                   {"relu", "Relu", "", {"h"}, {"r"}, {}, {}},
                   {"fc", "Gemm", "", {"r", "fc_w", "fc_b"}, {"y"}, {Attribute::integer("transB", 1)}, {}},
                   {"conv", "Conv", "", {"img", "conv_w"}, {"z"}, {}, {}}};
  return m;
}

int64_t zeros_of(const Tensor& t) {
  int64_t z = 0;
  for (int64_t i = 0; i < t.numel(); ++i) z += t.data<float>()[i] == 0.0f;
  return z;
}

const Tensor& weight(const Model& m, const std::string& name) { return m.graph.find_initializer(name)->tensor; }

RuleSet rules(std::vector<std::pair<std::string, std::map<std::string, std::string>>> entries) {
  RuleSet set;
  for (auto& [match, settings] : entries) set.rules.push_back({match, "", settings, "rule (" + match + ")"});
  return set;
}

calib::CalibStats stats_for(const Model& m, uint32_t seed) {
  std::vector<calib::Sample> samples;
  for (uint32_t i = 0; i < 40; ++i) {
    const auto x = correlated_inputs(4, 64, seed + i);
    samples.push_back({{"x", Tensor::from_values<float>(DType::F32, {4, 64}, x)},
                       {"img", gaussian_tensor({1, 8, 6, 6}, seed + 100 + i)}});
  }
  return calib::collect_stats(m, samples, {});
}

// Plain reference for SparseGPT's unstructured mode: the explicit inverse
// Hessian, eliminated one column at a time (the OBS update), the mask of each
// block chosen by w^2 / [H^-1]_jj^2 at the block's start.
std::vector<float> sparsegpt_reference(std::vector<float> w, int64_t rows, int64_t n, const std::vector<double>& gram,
                                       double fraction, int64_t block, double damp) {
  std::vector<double> h = gram;
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += h[static_cast<size_t>(i * n + i)] / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) h[static_cast<size_t>(i * n + i)] += damp * mean;
  // Gauss-Jordan inverse.
  std::vector<double> inv(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) inv[static_cast<size_t>(i * n + i)] = 1;
  for (int64_t c = 0; c < n; ++c) {
    const double p = h[static_cast<size_t>(c * n + c)];
    for (int64_t j = 0; j < n; ++j) {
      h[static_cast<size_t>(c * n + j)] /= p;
      inv[static_cast<size_t>(c * n + j)] /= p;
    }
    for (int64_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = h[static_cast<size_t>(r * n + c)];
      for (int64_t j = 0; j < n; ++j) {
        h[static_cast<size_t>(r * n + j)] -= f * h[static_cast<size_t>(c * n + j)];
        inv[static_cast<size_t>(r * n + j)] -= f * inv[static_cast<size_t>(c * n + j)];
      }
    }
  }
  // The inverse Hessian as each column is reached: the diagonal for the
  // scores and the row for the update.
  std::vector<std::vector<double>> rows_at(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    rows_at[static_cast<size_t>(j)].assign(inv.begin() + j * n, inv.begin() + (j + 1) * n);
    const double d = inv[static_cast<size_t>(j * n + j)];
    std::vector<double> col(static_cast<size_t>(n));
    for (int64_t a = 0; a < n; ++a) col[static_cast<size_t>(a)] = inv[static_cast<size_t>(a * n + j)];
    for (int64_t a = 0; a < n; ++a)
      for (int64_t b = 0; b < n; ++b) inv[static_cast<size_t>(a * n + b)] -= col[static_cast<size_t>(a)] * rows_at[static_cast<size_t>(j)][static_cast<size_t>(b)] / d;
  }
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> x(w.begin() + r * n, w.begin() + (r + 1) * n);
    std::vector<char> mask(static_cast<size_t>(n), 0);
    for (int64_t j = 0; j < n; ++j) {
      if (j % block == 0) {
        const int64_t b1 = std::min(n, j + block);
        const int64_t zeros = passes::zeros_before(fraction, r * n + b1) - passes::zeros_before(fraction, r * n + j);
        std::vector<std::pair<double, int64_t>> s;
        for (int64_t k = j; k < b1; ++k) {
          const double d = rows_at[static_cast<size_t>(k)][static_cast<size_t>(k)];
          s.push_back({x[static_cast<size_t>(k)] * x[static_cast<size_t>(k)] / d, k});
        }
        std::sort(s.begin(), s.end());
        for (int64_t k = 0; k < zeros; ++k) mask[static_cast<size_t>(s[static_cast<size_t>(k)].second)] = 1;
      }
      const auto& hj = rows_at[static_cast<size_t>(j)];
      const double q = mask[static_cast<size_t>(j)] ? 0.0 : x[static_cast<size_t>(j)];
      const double err = (x[static_cast<size_t>(j)] - q) / hj[static_cast<size_t>(j)];
      for (int64_t k = j + 1; k < n; ++k) x[static_cast<size_t>(k)] -= err * hj[static_cast<size_t>(k)];
      w[static_cast<size_t>(r * n + j)] = static_cast<float>(q);
    }
  }
  return w;
}

}  // namespace

TEST_CASE("pruning reaches the exact sparsity each rule asks for, per layer and global") {
  const Model m = three_layer_model();
  passes::PruneConfig c;
  c.min_elements = 0;
  c.rules = rules({{"attn*", {{"sparsity", "0.3"}}}, {"fc*", {{"sparsity", "0.7"}}}});
  c.sparsity = "0.55";
  passes::PruneReport report;
  const Model p = passes::prune_model(m, c, report);
  CHECK(zeros_of(weight(p, "attn_w")) == std::llround(0.3 * 64 * 48));
  CHECK(zeros_of(weight(p, "fc_w")) == std::llround(0.7 * 40 * 48));
  CHECK(zeros_of(weight(p, "conv_w")) == std::llround(0.55 * 16 * 72));
  CHECK(zeros_of(weight(p, "fc_b")) == 0);  // biases are not weights of the pass
  REQUIRE(report.tensors.size() == 3);
  CHECK(report.tensors[0].rule == "rule (attn*)");
  CHECK(report.tensors[2].rule == "default");
  CHECK(report.zeros == zeros_of(weight(p, "attn_w")) + zeros_of(weight(p, "fc_w")) + zeros_of(weight(p, "conv_w")));
  // Magnitude: the zeroed weights are exactly the smallest.
  for (const char* name : {"attn_w", "fc_w", "conv_w"}) {
    const Tensor& before = weight(m, name);
    const Tensor& after = weight(p, name);
    float largest_zeroed = 0, smallest_kept = INFINITY;
    for (int64_t i = 0; i < before.numel(); ++i) {
      const float a = std::fabs(before.data<float>()[i]);
      if (after.data<float>()[i] == 0) largest_zeroed = std::max(largest_zeroed, a);
      else {
        smallest_kept = std::min(smallest_kept, a);
        CHECK(after.data<float>()[i] == before.data<float>()[i]);
      }
    }
    CHECK(largest_zeroed <= smallest_kept);
  }
  SECTION("global: one threshold over the matched layers, the total exact") {
    passes::PruneConfig g = c;
    g.rules = rules({{"*", {{"sparsity", "0.5"}, {"scope", "global"}}}});
    passes::PruneReport r;
    const Model q = passes::prune_model(m, g, r);
    const int64_t total = 64 * 48 + 40 * 48 + 16 * 72;
    CHECK(r.zeros == std::llround(0.5 * static_cast<double>(total)));
    // Layers are cut by one magnitude: their shares differ.
    CHECK(zeros_of(weight(q, "attn_w")) != std::llround(0.5 * 64 * 48));
  }
  SECTION("Wanda: every output row loses the same share") {
    const calib::CalibStats stats = stats_for(m, 7);
    passes::PruneConfig w = c;
    w.method = "wanda";
    w.stats = &stats;
    passes::PruneReport r;
    const Model q = passes::prune_model(m, w, r);
    const Tensor& fc = weight(q, "fc_w");  // [40, 48]: rows are outputs
    for (int64_t row = 0; row < 40; ++row) {
      int64_t z = 0;
      for (int64_t i = 0; i < 48; ++i) z += fc.data<float>()[row * 48 + i] == 0.0f;
      CHECK(z == passes::zeros_before(0.7, (row + 1) * 48) - passes::zeros_before(0.7, row * 48));
    }
    CHECK(zeros_of(weight(q, "attn_w")) == std::llround(0.3 * 64 * 48));
  }
  SECTION("sparsity 0 leaves the model bit for bit") {
    passes::PruneConfig z;
    z.sparsity = "0";
    z.min_elements = 0;
    passes::PruneReport r;
    const Model q = passes::prune_model(m, z, r);
    for (const char* name : {"attn_w", "fc_w", "conv_w"})
      CHECK(std::memcmp(weight(q, name).bytes(), weight(m, name).bytes(), weight(m, name).nbytes()) == 0);
    CHECK(r.zeros == 0);
  }
}

TEST_CASE("N:M keeps the N largest of every M consecutive inputs") {
  const Model m = three_layer_model();
  const calib::CalibStats stats = stats_for(m, 11);
  for (const char* method : {"magnitude", "wanda", "sparsegpt"})
    for (const auto& [n, mm] : std::vector<std::pair<int, int>>{{2, 4}, {4, 8}, {1, 4}}) {
      INFO(method << " " << n << ":" << mm);
      passes::PruneConfig c;
      c.min_elements = 0;
      c.sparsity = std::to_string(n) + ":" + std::to_string(mm);
      c.method = method;
      c.stats = &stats;
      passes::PruneReport r;
      const Model p = passes::prune_model(m, c, r);
      // attn_w is MatMul's B [64, 48]: inputs run down a column.
      const Tensor& a = weight(p, "attn_w");
      const Tensor& a0 = weight(m, "attn_w");
      for (int64_t col = 0; col < 48; ++col)
        for (int64_t k0 = 0; k0 < 64; k0 += mm) {
          int64_t zeros = 0;
          std::vector<float> mags;
          for (int64_t k = k0; k < k0 + mm; ++k) {
            zeros += a.data<float>()[k * 48 + col] == 0.0f;
            mags.push_back(std::fabs(a0.data<float>()[k * 48 + col]));
          }
          CHECK(zeros == mm - n);
          if (std::string(method) == "magnitude") {
            std::sort(mags.begin(), mags.end());
            for (int64_t k = k0; k < k0 + mm; ++k)
              if (a.data<float>()[k * 48 + col] != 0.0f) CHECK(std::fabs(a0.data<float>()[k * 48 + col]) >= mags[static_cast<size_t>(mm - n)]);
          }
        }
      // conv_w rows are 72 inputs (8 channels x 3 x 3): 72 % 8 == 0.
      CHECK(zeros_of(weight(p, "conv_w")) == 16 * 72 * (mm - n) / mm);
    }
}

TEST_CASE("masks equal a plain full sort, and SparseGPT equals the explicit inverse-Hessian reference") {
  const int64_t rows = 12, n = 40, count = 300;
  const std::vector<float> x = correlated_inputs(count, n, 21);
  std::vector<double> gram(static_cast<size_t>(n * n), 0.0);
  calib::gram_accumulate(x.data(), count, n, gram.data());
  calib::gram_symmetrize(n, gram.data());
  const std::vector<float> w = gaussian_values(static_cast<size_t>(rows * n), 22);

  // Magnitude over the whole matrix against std::sort of (|w|, position).
  std::vector<float> mag = w;
  passes::SparsityTarget half;
  half.fraction = 0.45;
  CHECK(passes::apply_mask(mag, passes::magnitude_scores(w), rows, n, half, false) == std::llround(0.45 * rows * n));
  std::vector<std::pair<float, size_t>> order;
  for (size_t i = 0; i < w.size(); ++i) order.push_back({std::fabs(w[i]), i});
  std::sort(order.begin(), order.end());
  std::vector<float> expect = w;
  for (int64_t k = 0; k < std::llround(0.45 * rows * n); ++k) expect[order[static_cast<size_t>(k)].second] = 0;
  CHECK(mag == expect);

  // SparseGPT: blocks of 16 so the block-wise mask choice is exercised.
  for (double fraction : {0.3, 0.5, 0.8}) {
    INFO("fraction " << fraction);
    std::vector<float> ours = w;
    passes::SparsityTarget t;
    t.fraction = fraction;
    passes::SparseGptOptions o;
    o.block = 16;
    passes::sparsegpt_prune(ours, rows, n, gram.data(), 1, t, o);
    const std::vector<float> ref = sparsegpt_reference(w, rows, n, gram, fraction, 16, o.damp);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      CHECK((ours[i] == 0.0f) == (ref[i] == 0.0f));
      worst = std::max(worst, static_cast<double>(std::fabs(ours[i] - ref[i])));
      scale = std::max(scale, static_cast<double>(std::fabs(ref[i])));
    }
    CHECK(worst <= 1e-4 * scale);
  }
}

TEST_CASE("calibrated pruning beats magnitude on a layer's output error") {
  // One MatMul fed correlated, unevenly scaled inputs.
  Model m;
  m.opsets = {{"", 13}};
  m.graph.inputs = {f32_input("x", {50, 96})};
  m.graph.outputs = {{"y", DType::F32, std::nullopt, {}, {}, {}}};
  m.graph.initializers = {{"w", gaussian_tensor({96, 64}, 31), {}}};
  m.graph.nodes = {{"mm", "MatMul", "", {"x", "w"}, {"y"}, {}, {}}};
  std::vector<calib::Sample> samples;
  for (uint32_t i = 0; i < 8; ++i)
    samples.push_back({{"x", Tensor::from_values<float>(DType::F32, {50, 96}, correlated_inputs(50, 96, 40 + i))}});
  const calib::CalibStats stats = calib::collect_stats(m, samples, {});
  for (const char* sparsity : {"0.5", "2:4", "0.7"}) {
    std::map<std::string, double> err;
    for (const char* method : {"magnitude", "wanda", "sparsegpt"}) {
      passes::PruneConfig c;
      c.min_elements = 0;
      c.sparsity = sparsity;
      c.method = method;
      c.stats = &stats;
      passes::PruneReport r;
      passes::prune_model(m, c, r);
      err[method] = r.tensors.at(0).output_error;
      WARN(sparsity << " " << method << ": output error " << err[method]);
    }
    INFO(sparsity);
    CHECK(err["wanda"] < err["magnitude"]);
    CHECK(err["sparsegpt"] < err["wanda"]);
  }
}

TEST_CASE("slmopt prune: rules, JSON report, and clear errors that leave no output") {
  test::TempDir tmp;
  const Model m = three_layer_model();
  onnx_format::write_onnx(m, tmp.file("m.onnx"));
  auto r = test::run_slmopt("prune '" + tmp.file("m.onnx") + "' -o '" + tmp.file("p.onnx") +
                            "' --rules 'attn*=0.25,fc*=2:4' --sparsity 0.6 --min-elements 0 --json");
  REQUIRE(r.exit_code == 0);
  const auto doc = nlohmann::json::parse(r.out);
  REQUIRE(doc["tensors"].size() == 3);
  CHECK(doc["tensors"][0]["target"] == "0.25");
  CHECK(doc["tensors"][1]["target"] == "2:4");
  CHECK(doc["tensors"][2]["target"] == "0.6");
  const Model p = onnx_format::read_onnx(tmp.file("p.onnx"));
  CHECK(zeros_of(weight(p, "attn_w")) == 768);
  CHECK(doc["zeros"] == 768 + 40 * 48 / 2 + std::llround(0.6 * 16 * 72));
  // The pruned model runs and is close at low sparsity.
  const Tensor x = gaussian_tensor({4, 64}, 5), img = gaussian_tensor({1, 8, 6, 6}, 6);
  const auto before = runtime::Session(m).run({{"x", x}, {"img", img}});
  const auto after = runtime::Session(p).run({{"x", x}, {"img", img}});
  CHECK(after.at("y").shape() == before.at("y").shape());
  // Same inputs, same bytes.
  r = test::run_slmopt("prune '" + tmp.file("m.onnx") + "' -o '" + tmp.file("p2.onnx") +
                       "' --rules 'attn*=0.25,fc*=2:4' --sparsity 0.6 --min-elements 0 -q");
  CHECK(test::read_bytes(tmp.file("p.onnx")) == test::read_bytes(tmp.file("p2.onnx")));

  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"--sparsity 1.5", "got '1.5'"},
           {"--rules 'attn*=3:2'", "N:M"},
           {"--method wanda", "needs calibration data"},
           {"--method sparse", "unknown method"},
           {"--global --sparsity 2:4", "scope global"}}) {
    INFO(args);
    r = test::run_slmopt("prune '" + tmp.file("m.onnx") + "' -o '" + tmp.file("bad.onnx") + "' " + args);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(message));
    CHECK(!std::filesystem::exists(tmp.file("bad.onnx")));
  }
}

namespace {

Tensor constant(std::vector<int64_t> shape, uint32_t seed, float offset) {
  Tensor t = gaussian_tensor(std::move(shape), seed, 0.3f);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] += offset;
  return t;
}

// A Conv chain through BatchNormalization, Relu, a per-channel Mul, a scalar
// Max and MaxPool; a SwiGLU feed-forward (gate and up MatMuls, SiLU, their
// product, a per-neuron Add, the down MatMul); and a MatMul whose channels
// meet a LayerNormalization (not prunable).
Model structured_model() {
  Model m;
  m.opsets = {{"", 17}};
  m.graph.inputs = {f32_input("img", {1, 4, 8, 8}), f32_input("h", {3, 16})};
  for (const char* out : {"y", "z", "v"}) m.graph.outputs.push_back({out, DType::F32, std::nullopt, {}, {}, {}});
  m.graph.initializers = {
      {"w1", gaussian_tensor({8, 4, 3, 3}, 61), {}},   {"b1", gaussian_tensor({8}, 62), {}},
      {"bn_s", constant({8}, 63, 1.0f), {}},           {"bn_b", gaussian_tensor({8}, 64), {}},
      {"bn_m", gaussian_tensor({8}, 65), {}},          {"bn_v", constant({8}, 66, 2.0f), {}},
      {"cmul", constant({1, 8, 1, 1}, 67, 1.0f), {}},  {"floor", Tensor::from_values<float>(DType::F32, {}, {-0.5f}), {}},
      {"w2", gaussian_tensor({6, 8, 3, 3}, 68), {}},   {"wg", gaussian_tensor({16, 32}, 69), {}},
      {"wu", gaussian_tensor({16, 32}, 70), {}},       {"cadd", gaussian_tensor({32}, 71), {}},
      {"wd", gaussian_tensor({32, 16}, 72), {}},       {"wb", gaussian_tensor({16, 10}, 73), {}},
      {"ln_s", constant({10}, 74, 1.0f), {}},          {"ln_b", gaussian_tensor({10}, 75), {}},
      {"wc", gaussian_tensor({10, 5}, 76), {}}};
  m.graph.nodes = {{"conv1", "Conv", "", {"img", "w1", "b1"}, {"c1"}, {Attribute::integers("pads", {1, 1, 1, 1})}, {}},
                   {"bn", "BatchNormalization", "", {"c1", "bn_s", "bn_b", "bn_m", "bn_v"}, {"n1"}, {}, {}},
                   {"relu", "Relu", "", {"n1"}, {"r1"}, {}, {}},
                   {"scale", "Mul", "", {"r1", "cmul"}, {"s1"}, {}, {}},
                   {"max", "Max", "", {"s1", "floor"}, {"m1"}, {}, {}},
                   {"pool", "MaxPool", "", {"m1"}, {"p1"}, {Attribute::integers("kernel_shape", {2, 2})}, {}},
                   {"conv2", "Conv", "", {"p1", "w2"}, {"y"}, {}, {}},
                   {"gate", "MatMul", "", {"h", "wg"}, {"g"}, {}, {}},
                   {"up", "MatMul", "", {"h", "wu"}, {"u"}, {}, {}},
                   {"sig", "Sigmoid", "", {"g"}, {"sg"}, {}, {}},
                   {"silu", "Mul", "", {"g", "sg"}, {"a"}, {}, {}},
                   {"glu", "Mul", "", {"a", "u"}, {"au"}, {}, {}},
                   {"shift", "Add", "", {"au", "cadd"}, {"as"}, {}, {}},
                   {"down", "MatMul", "", {"as", "wd"}, {"z"}, {}, {}},
                   {"proj", "MatMul", "", {"h", "wb"}, {"pb"}, {}, {}},
                   {"ln", "LayerNormalization", "", {"pb", "ln_s", "ln_b"}, {"lb"}, {}, {}},
                   {"out", "MatMul", "", {"lb", "wc"}, {"v"}, {}, {}}};
  return m;
}

// Which of the original's channels (rows along `axis`) the pruned tensor kept.
std::vector<int64_t> kept_channels(const Tensor& original, const Tensor& pruned, int64_t axis) {
  std::vector<int64_t> kept;
  for (int64_t c = 0; c < pruned.shape()[static_cast<size_t>(axis)]; ++c) {
    const auto row = passes::channel_slice(pruned, axis, c);
    for (int64_t o = 0; o < original.shape()[static_cast<size_t>(axis)]; ++o)
      if (passes::channel_slice(original, axis, o) == row) {
        kept.push_back(o);
        break;
      }
  }
  return kept;
}

// The original with the consumers' inputs from every channel not kept set to zero.
void zero_inputs(Model& m, const std::string& weight, int64_t axis, const std::vector<int64_t>& kept) {
  Tensor& w = const_cast<Tensor&>(m.graph.find_initializer(weight)->tensor);
  const auto& s = w.shape();
  int64_t inner = 1;
  for (size_t i = static_cast<size_t>(axis) + 1; i < s.size(); ++i) inner *= s[i];
  int64_t outer = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= s[static_cast<size_t>(i)];
  const int64_t n = s[static_cast<size_t>(axis)];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < n; ++c)
      if (std::find(kept.begin(), kept.end(), c) == kept.end())
        for (int64_t i = 0; i < inner; ++i) w.mutable_data<float>()[(o * n + c) * inner + i] = 0.0f;
}

}  // namespace

TEST_CASE("structured pruning removes whole channels and the outputs equal the original without them") {
  const Model m = structured_model();
  const std::map<std::string, Tensor> feeds = {{"img", gaussian_tensor({1, 4, 8, 8}, 80)}, {"h", gaussian_tensor({3, 16}, 81)}};
  const auto y0 = runtime::Session(m).run(feeds);
  passes::PruneConfig c;
  c.structured = "channels";
  c.compensate_means = false;  // exact equivalence; compensation is checked below
  SECTION("at 0 % nothing changes") {
    c.sparsity = "0";
    passes::PruneReport r;
    const Model p = passes::prune_model(m, c, r);
    const auto y = runtime::Session(p).run(feeds);
    for (const char* out : {"y", "z", "v"})
      CHECK(std::memcmp(y.at(out).bytes(), y0.at(out).bytes(), y0.at(out).nbytes()) == 0);
  }
  for (const char* method : {"magnitude", "wanda"}) {
    INFO(method);
    std::vector<calib::Sample> samples;
    for (uint32_t i = 0; i < 6; ++i)
      samples.push_back({{"img", gaussian_tensor({1, 4, 8, 8}, 90 + i)}, {"h", gaussian_tensor({3, 16}, 100 + i)}});
    const calib::CalibStats stats = calib::collect_stats(m, samples, {});
    c.sparsity = "0.5";
    c.method = method;
    c.stats = &stats;
    passes::PruneReport r;
    const Model p = passes::prune_model(m, c, r);
    // conv1, gate+up; left: conv2, down and out (graph outputs), proj (LayerNormalization)
    REQUIRE(r.groups.size() == 6);
    CHECK(weight(p, "w1").shape() == std::vector<int64_t>{4, 4, 3, 3});
    CHECK(weight(p, "b1").shape() == std::vector<int64_t>{4});
    CHECK(weight(p, "bn_v").shape() == std::vector<int64_t>{4});
    CHECK(weight(p, "cmul").shape() == std::vector<int64_t>{1, 4, 1, 1});
    CHECK(weight(p, "w2").shape() == std::vector<int64_t>{6, 4, 3, 3});
    CHECK(weight(p, "wg").shape() == std::vector<int64_t>{16, 16});
    CHECK(weight(p, "wu").shape() == std::vector<int64_t>{16, 16});
    CHECK(weight(p, "cadd").shape() == std::vector<int64_t>{16});
    CHECK(weight(p, "wd").shape() == std::vector<int64_t>{16, 16});
    CHECK(weight(p, "wb").shape() == std::vector<int64_t>{16, 10});  // left: LayerNormalization
    int left = 0;
    for (const auto& g : r.groups)
      if (!g.why_not.empty()) {
        ++left;
        CHECK((g.why_not.find("LayerNormalization") != std::string::npos || g.why_not.find("graph output") != std::string::npos));
      }
    CHECK(left == 4);
    // Equivalence: the original with the removed channels' inputs zeroed.
    Model ref = m;
    zero_inputs(ref, "w2", 1, kept_channels(weight(m, "w1"), weight(p, "w1"), 0));
    zero_inputs(ref, "wd", 0, kept_channels(weight(m, "wg"), weight(p, "wg"), 1));
    const auto want = runtime::Session(ref).run(feeds);
    const auto got = runtime::Session(p).run(feeds);
    for (const char* out : {"y", "z", "v"}) {
      INFO(out);
      CHECK(eval::compare_tensors(want.at(out), got.at(out))["rel_l2"] < 1e-6);
    }
    // The pruned model survives ONNX.
    test::TempDir tmp;
    onnx_format::write_onnx(p, tmp.file("p.onnx"));
    CHECK(eval::compare_tensors(got.at("z"), runtime::Session(onnx_format::read_onnx(tmp.file("p.onnx"))).run(feeds).at("z"))["rel_l2"] == 0);
  }
}

TEST_CASE("mean compensation moves removed channels' means into the readers' biases") {
  // Channels with a large mean (a positive bias before Relu): removing them
  // without compensation shifts the output; with it only the fluctuation is lost.
  Model m = structured_model();
  for (auto& init : m.graph.initializers)
    if (init.name == "b1") init.tensor = constant({8}, 62, 3.0f);
  std::vector<calib::Sample> samples;
  for (uint32_t i = 0; i < 8; ++i)
    samples.push_back({{"img", gaussian_tensor({1, 4, 8, 8}, 110 + i)}, {"h", gaussian_tensor({3, 16}, 120 + i)}});
  const calib::CalibStats stats = calib::collect_stats(m, samples, {});
  std::map<bool, double> err;
  for (bool compensate : {false, true}) {
    passes::PruneConfig c;
    c.structured = "channels";
    c.sparsity = "0.5";
    c.method = "wanda";
    c.stats = &stats;
    c.compensate_means = compensate;
    passes::PruneReport r;
    const Model p = passes::prune_model(m, c, r);
    CHECK(r.groups[0].compensated == (compensate ? 1u : 0u));  // conv1's reader conv2 (no bias: one is added)
    double e = 0;
    for (const auto& s : samples)
      e += eval::compare_tensors(runtime::Session(m).run(s).at("y"), runtime::Session(p).run(s).at("y"))["rel_l2"];
    err[compensate] = e;
    if (compensate) CHECK(p.graph.find_initializer("w2_bias"));
  }
  WARN("conv chain at 50 % channels: rel_l2 summed over samples without compensation " << err[false] << ", with " << err[true]);
  CHECK(err[true] < 0.5 * err[false]);
}

TEST_CASE("slmopt prune --structured: ffn only, a table of groups, and clear errors") {
  test::TempDir tmp;
  onnx_format::write_onnx(structured_model(), tmp.file("m.onnx"));
  auto r = test::run_slmopt("prune '" + tmp.file("m.onnx") + "' -o '" + tmp.file("p.onnx") + "' --structured ffn --sparsity 0.25 --json");
  REQUIRE(r.exit_code == 0);
  const auto doc = nlohmann::json::parse(r.out);
  int pruned = 0;
  for (const auto& g : doc["groups"]) {
    if (g["why_not"] == "") {
      ++pruned;
      CHECK(g["kept"] == 24);
      CHECK(g["producers"].size() == 2);  // gate and up together
    }
  }
  CHECK(pruned == 1);
  CHECK(onnx_format::read_onnx(tmp.file("p.onnx")).graph.find_initializer("w1")->tensor.shape()[0] == 8);
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"--structured rows", "channels, ffn or heads"},
           {"--structured channels --sparsity 2:4", "not N:M"}}) {
    INFO(args);
    r = test::run_slmopt("prune '" + tmp.file("m.onnx") + "' -o '" + tmp.file("bad.onnx") + "' " + args);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(message));
    CHECK(!std::filesystem::exists(tmp.file("bad.onnx")));
  }
}
