// slmopt plan: the knapsack against brute force, sensitivities measured on a
// real model, the rule file rebuilding the plan, the cache, and the command.
#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>

#include <nlohmann/json.hpp>

#include "calib/dataset.hpp"
#include "config/rule_file.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "lm/decoder_runner.hpp"
#include "lm/lm_eval.hpp"
#include "model_io.hpp"
#include "onnx/onnx_io.hpp"
#include "plan/allocate.hpp"
#include "plan/knapsack.hpp"
#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;
using Catch::Matchers::Contains;

namespace {

// Least cost over every combination, or infinity when none fits.
double brute_force(const std::vector<std::vector<plan::Option>>& groups, uint64_t budget) {
  double best = std::numeric_limits<double>::infinity();
  std::vector<size_t> pick(groups.size(), 0);
  while (true) {
    uint64_t bytes = 0;
    double cost = 0;
    for (size_t g = 0; g < groups.size(); ++g) {
      bytes += groups[g][pick[g]].bytes;
      cost += groups[g][pick[g]].cost;
    }
    if (bytes <= budget) best = std::min(best, cost);
    size_t g = 0;
    while (g < groups.size() && ++pick[g] == groups[g].size()) pick[g++] = 0;
    if (g == groups.size()) return best;
  }
}

std::vector<std::vector<plan::Option>> random_instance(std::mt19937& rng, uint64_t max_bytes) {
  std::uniform_int_distribution<size_t> n_groups(1, 6), n_options(1, 4);
  std::uniform_int_distribution<uint64_t> bytes(1, max_bytes);
  std::uniform_real_distribution<double> cost(0, 10);
  std::vector<std::vector<plan::Option>> groups(n_groups(rng));
  for (auto& g : groups) {
    g.resize(n_options(rng));
    for (auto& o : g) o = {bytes(rng), cost(rng)};
  }
  return groups;
}

}  // namespace

TEST_CASE("the knapsack solver matches brute force on small random instances") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 400; ++trial) {
    const auto groups = random_instance(rng, 100);
    const uint64_t budget = std::uniform_int_distribution<uint64_t>(0, 450)(rng);
    const double want = brute_force(groups, budget);
    const auto got = plan::solve_knapsack(groups, budget);
    if (want == std::numeric_limits<double>::infinity()) {
      CHECK_FALSE(got.has_value());
      CHECK(plan::smallest_bytes(groups) > budget);
      continue;
    }
    REQUIRE(got.has_value());
    CHECK(got->bytes <= budget);
    CHECK(std::abs(got->cost - want) < 1e-9);
  }
}

TEST_CASE("on a coarse grid the knapsack answer still fits and is close to the optimum") {
  std::mt19937 rng(11);
  int exact = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const auto groups = random_instance(rng, 100000);
    const uint64_t budget = std::uniform_int_distribution<uint64_t>(0, 400000)(rng);
    const double want = brute_force(groups, budget);
    const auto got = plan::solve_knapsack(groups, budget, 64);  // cells of ~6 KB
    if (want == std::numeric_limits<double>::infinity()) {
      CHECK_FALSE(got.has_value());
      continue;
    }
    REQUIRE(got.has_value());
    CHECK(got->bytes <= budget);
    CHECK(got->cost >= want - 1e-9);
    exact += std::abs(got->cost - want) < 1e-9;
  }
  CHECK(exact > 200);  // the relaxation usually fits, and is then optimal
}

TEST_CASE("the planner measures a real classifier, fits budgets, and its rule file rebuilds the plan") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  const Model model = onnx_format::read_onnx((*dir / "alexa_v0.1.onnx").string());
  const runtime::Session probe(model);
  const auto measure = plan::output_error_measure(model, calib::random_samples(probe.feed_inputs(), 8, 3), "auto");
  CHECK(measure->metric() == "rel_l2");  // one sigmoid output: not a distribution over classes
  passes::QuantizeConfig base;
  const plan::Variants variants(model, {"f32", "f16", "q8", "q4", "q2"}, base);
  const plan::SensitivityTable table = plan::measure_sensitivity(variants, *measure, "test");
  // Gemm weights 128x1536 and 128x128 are planned; the 1x128 head and biases are fixed.
  REQUIRE(table.weights.size() == 2);
  for (const auto& w : table.weights) {
    CHECK(w.error[0] == 0);
    CHECK(w.error[1] < w.error[2]);
    CHECK(w.error[2] < w.error[3]);
    CHECK(w.error[3] < w.error[4]);
    CHECK(w.bytes[0] == static_cast<uint64_t>(w.weight.numel) * 4);
    CHECK(w.bytes[4] < w.bytes[3]);
  }

  // Scaled: one run per weight (at q4); the others extrapolated by the square
  // of the weight's error ratio stay within a small factor of the measured.
  const plan::SensitivityTable scaled = plan::measure_sensitivity(variants, *measure, "test", {}, true, 3);
  CHECK(scaled.scaled);
  for (size_t w = 0; w < 2; ++w) {
    CHECK(scaled.weights[w].error[3] == table.weights[w].error[3]);
    CHECK(scaled.weights[w].error[0] == 0);
    for (size_t t : {2, 4}) {
      const double ratio = scaled.weights[w].error[t] / table.weights[w].error[t];
      CHECK(ratio > 0.25);
      CHECK(ratio < 4);
    }
  }
  CHECK_THROWS_AS(plan::measure_sensitivity(variants, *measure, "test", {}, true, 1), Error);  // f16: not a scheme

  // Every budget: the plan is the brute-force optimum of the table.
  const uint64_t lo = plan::smallest_size(table), hi = plan::largest_size(table);
  for (uint64_t budget = lo; budget <= hi; budget += (hi - lo) / 37) {
    const plan::Plan p = plan::plan_for_budget(table, budget);
    CHECK(p.bytes <= budget);
    double best = std::numeric_limits<double>::infinity();
    for (size_t a = 0; a < 5; ++a)
      for (size_t b = 0; b < 5; ++b)
        if (plan::plan_from_pick(table, {a, b}, "").bytes <= budget)
          best = std::min(best, plan::plan_from_pick(table, {a, b}, "").predicted);
    CHECK(p.predicted <= best + 1e-12);
  }
  // A budget below the smallest plan names the smallest size.
  try {
    plan::plan_for_budget(table, lo - 1);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Usage);
    CHECK_THAT(std::string(e.what()), Contains("cannot be met") && Contains(std::to_string(lo) + " bytes"));
  }

  // The rule file makes quantize build exactly the planned tensors.
  test::TempDir tmp;
  const plan::Plan p = plan::plan_for_budget(table, (lo + hi) / 3);
  write_file_atomically(tmp.file("plan.yaml"), plan::plan_rule_file(table, p, {"alexa", "mse", 1024, (lo + hi) / 3, {}}));
  const auto file = config::read_rule_file(tmp.file("plan.yaml"));
  passes::QuantizeConfig config;
  config.default_spec = file.settings.at("default");
  config.rules = file.rules;
  passes::QuantizeReport report;
  const Model built = passes::quantize_model(model, config, report);
  const Model assembled = variants.assemble(p.pick);
  uint64_t built_bytes = 0;
  for (const auto& init : built.graph.initializers) built_bytes += init.tensor.nbytes();
  CHECK(built_bytes == p.bytes);
  CHECK(measure->error(built) == measure->error(assembled));

  // The cache gives the same table back for its key only.
  plan::SensitivityTable with_memo = table;
  with_memo.measured[plan::plan_signature(p.pick)] = 0.25;
  plan::write_sensitivity_cache(tmp.file("s.json"), with_memo);
  const auto back = plan::read_sensitivity_cache(tmp.file("s.json"), "test");
  REQUIRE(back.has_value());
  CHECK(back->weights.size() == 2);
  CHECK(back->weights[1].error == table.weights[1].error);
  CHECK(back->weights[1].bytes == table.weights[1].bytes);
  CHECK(back->measured.at(plan::plan_signature(p.pick)) == 0.25);
  CHECK_FALSE(plan::read_sensitivity_cache(tmp.file("s.json"), "other data").has_value());
  CHECK_FALSE(plan::read_sensitivity_cache(tmp.file("missing.json"), "test").has_value());
  test::write_bytes(tmp.file("bad.json"), "{\"format\": \"slmopt-sensitivity-1\", \"key\": \"test\", \"weights\": [");
  CHECK_THROWS_AS(plan::read_sensitivity_cache(tmp.file("bad.json"), "test"), Error);
}

TEST_CASE("slmopt plan writes a rule file within the budget, and names the smallest size when it cannot") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  test::TempDir tmp;
  const std::string alexa = (*dir / "alexa_v0.1.onnx").string();
  const std::string args = "plan '" + alexa + "' --random 8 --seed 2 --candidates f16,q8,q4,q2 --cache '" +
                           tmp.file("s.json") + "'";
  const std::string out = " -o '" + tmp.file("p.yaml") + "'";
  auto r = test::run_slmopt(args + out + " --budget 120KiB --json --curve '" + tmp.file("c.svg") + "'");
  REQUIRE(r.exit_code == 0);
  const auto doc = nlohmann::json::parse(r.out);
  CHECK(doc["plan"]["bytes"].get<uint64_t>() <= 120 * 1024);
  CHECK(doc["plan"]["measured"].is_number());
  CHECK_FALSE(doc["sensitivity"]["from_cache"].get<bool>());
  CHECK(doc["comparison"].size() == 5);  // four uniform, one hand mix
  for (const auto& row : doc["comparison"])
    CHECK(row["planned_at_same_bytes"]["measured"].get<double>() <= row["baseline"]["measured"].get<double>());
  CHECK(test::read_bytes(tmp.file("c.svg")).starts_with("<svg"));
  CHECK_THAT(test::read_bytes(tmp.file("p.yaml")), Contains("rules:"));
  // Planned again from the cache: nothing is measured again.
  r = test::run_slmopt(args + out + " --budget 100KiB --json");
  REQUIRE(r.exit_code == 0);
  CHECK(nlohmann::json::parse(r.out)["sensitivity"]["from_cache"].get<bool>());
  // The rule file quantizes the model.
  r = test::run_slmopt("quantize '" + alexa + "' -o '" + tmp.file("q.slm") + "' --config '" + tmp.file("p.yaml") + "' -q");
  CHECK(r.exit_code == 0);
  // Too small a budget: one line naming the smallest achievable size, nothing written.
  r = test::run_slmopt(args + " --budget 2KiB -o '" + tmp.file("none.yaml") + "'");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Contains("cannot be met") && Contains("smallest plan"));
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK_FALSE(std::filesystem::exists(tmp.file("none.yaml")));
  // A RAM budget the activations cannot fit: exit 2 before the rule file is written.
  r = test::run_slmopt(args + " --budget 120KiB --ram 1KiB -o '" + tmp.file("noram.yaml") + "'");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Contains("--ram 1KiB"));
  CHECK_FALSE(std::filesystem::exists(tmp.file("noram.yaml")));
}

TEST_CASE("measure_many gives each model's own error in order, on one core or two, and passes a failure on") {
  const Model base = test::single_node_model("MatMul", test::gaussian_tensor({16, 8}, 1), {4, 16});
  const runtime::Session probe(base);
  const auto measure = plan::output_error_measure(base, calib::random_samples(probe.feed_inputs(), 3, 2), "rel_l2");
  const auto model = [&](size_t i) {
    Model m = base;
    Tensor w = test::gaussian_tensor({16, 8}, 1);
    for (int64_t k = 0; k < w.numel(); ++k) w.mutable_data<float>()[k] *= 1.0f + 0.01f * static_cast<float>(i * (k % 5));
    m.graph.initializers[0].tensor = w;
    return m;
  };
  std::vector<double> one_by_one;
  for (size_t i = 0; i < 9; ++i) one_by_one.push_back(measure->error(model(i)));
  CHECK(one_by_one[0] == 0);
  CHECK(one_by_one[8] > one_by_one[1]);
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    std::vector<size_t> finished;
    CHECK(plan::measure_many(*measure, 9, model, [&](size_t i) { finished.push_back(i); }) == one_by_one);
    std::sort(finished.begin(), finished.end());
    CHECK(finished == std::vector<size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8});
    const auto failing = [&](size_t i) {
      if (i == 5) throw_bad_input("model 5 is broken", "m5");
      return model(i);
    };
    CHECK_THROWS_WITH(plan::measure_many(*measure, 9, failing), "m5: model 5 is broken");
  }
  omp_set_num_threads(saved);
}

TEST_CASE("the language-model measure is the mean KL of the scored positions, as defined") {
  const Model reference = load_model(test::test_data("stories260K"));
  Model candidate = reference;
  for (auto& init : candidate.graph.initializers)
    if (init.name.find("layers.2.mlp.down_proj") != std::string::npos) {
      Tensor w = init.tensor;
      Tensor noisy(DType::F32, w.shape());
      const Tensor noise = test::gaussian_tensor(w.shape(), 3, 0.02f);
      for (int64_t k = 0; k < w.numel(); ++k) noisy.mutable_data<float>()[k] = w.data<float>()[k] + noise.data<float>()[k];
      init.tensor = noisy;
    }
  const std::vector<std::vector<int64_t>> windows = {{1, 403, 407, 261, 378, 410, 268, 415, 261, 316, 342, 370},
                                                     {1, 365, 429, 331, 269, 285, 353, 304}};
  const auto measure = plan::language_model_measure(reference, windows);
  lm::DecoderRunner r(reference), c(candidate);
  const auto vocab = static_cast<size_t>(r.vocab());
  double sum = 0;
  int scored = 0;
  for (const auto& w : windows) {
    r.reset();
    c.reset();
    const auto lr_all = r.feed(w), lc_all = c.feed(w);
    for (size_t t = w.size() / 2; t + 1 < w.size(); ++t, ++scored) {
      const auto lr = lm::log_softmax(std::span<const float>(lr_all.data() + t * vocab, vocab));
      const auto lc = lm::log_softmax(std::span<const float>(lc_all.data() + t * vocab, vocab));
      double kl = 0;
      for (size_t v = 0; v < vocab; ++v) kl += std::exp(lr[v]) * (lr[v] - lc[v]);
      sum += kl;
    }
  }
  const double want = sum / scored;
  CHECK(want > 1e-4);
  CHECK(measure->error(candidate) == Approx(want).epsilon(1e-9));
  CHECK(measure->error(reference) == Approx(0).margin(1e-12));
}
