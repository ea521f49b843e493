#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

#include "calib/dataset.hpp"
#include "onnx/onnx_io.hpp"
#include "runtime/memory_plan.hpp"
#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;
using runtime::BufferLifetime;

namespace {
bool overlaps(const runtime::PlannedBuffer& a, const runtime::PlannedBuffer& b) {
  const bool in_time = a.lifetime.first <= b.lifetime.last && b.lifetime.first <= a.lifetime.last;
  const bool in_memory = a.offset < b.offset + b.lifetime.bytes && b.offset < a.offset + a.lifetime.bytes;
  return in_time && in_memory && a.lifetime.bytes && b.lifetime.bytes;
}
}  // namespace

TEST_CASE("greedy plans never overlap live buffers and reuse dead ones") {
  // A chain a -> b -> c: a is dead when c is born, so c reuses a's bytes.
  auto chain = runtime::plan_greedy({{"a", 1000, 0, 1}, {"b", 1000, 1, 2}, {"c", 1000, 2, 3}});
  CHECK(chain.arena_bytes == 1024 + 1000);
  CHECK(chain.peak_live_bytes == 2000);
  CHECK(chain.find("a")->offset == chain.find("c")->offset);

  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<BufferLifetime> lts;
    const int n = 1 + static_cast<int>(rng() % 30);
    for (int i = 0; i < n; ++i) {
      const size_t first = rng() % 40;
      lts.push_back({"v" + std::to_string(i), 1 + rng() % 5000, first, first + rng() % 10});
    }
    auto plan = runtime::plan_greedy(lts);
    REQUIRE(plan.buffers.size() == lts.size());
    CHECK(plan.arena_bytes >= plan.peak_live_bytes);
    for (size_t i = 0; i < plan.buffers.size(); ++i) {
      CHECK(plan.buffers[i].offset % 64 == 0);
      for (size_t j = i + 1; j < plan.buffers.size(); ++j) CHECK_FALSE(overlaps(plan.buffers[i], plan.buffers[j]));
    }
  }
}

TEST_CASE("on the real models, a run inside the planned arena uses exactly the planned bytes") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  for (const char* name : {"embedding_model.onnx", "melspectrogram.onnx", "alexa_v0.1.onnx", "hey_jarvis_v0.1.onnx"}) {
    INFO(name);
    Model m = onnx_format::read_onnx((*dir / name).string());
    runtime::Session s(m);
    auto inputs = s.feed_inputs();
    for (auto& v : inputs)
      for (auto& d : *v.shape)
        if (!d.is_fixed()) d.value = d.param == "samples" ? 16000 : 2;
    auto feeds = calib::random_samples(inputs, 1, 5).at(0);
    auto plan = s.plan_memory(feeds);
    runtime::RunStats stats;
    auto in_arena = s.run_in_arena(feeds, plan, &stats);
    auto plain = s.run(feeds);
    CHECK(stats.arena_bytes_used == plan.arena_bytes);
    CHECK(plan.arena_bytes >= plan.peak_live_bytes);
    for (const auto& [out, t] : plain) CHECK(in_arena.at(out).bit_equal(t));
    WARN(name << ": arena " << plan.arena_bytes << " bytes, peak live " << plan.peak_live_bytes << " bytes ("
              << 100.0 * static_cast<double>(plan.arena_bytes) / static_cast<double>(plan.peak_live_bytes) << " %)");

    // Inputs of another shape do not fit the plan.
    if (std::string(name) == "embedding_model.onnx") {
      auto other = inputs;
      for (auto& d : *other[0].shape) d.value = d.value == 2 ? 3 : d.value;
      auto bigger = calib::random_samples(other, 1, 5).at(0);
      CHECK_THROWS_WITH(s.run_in_arena(bigger, plan), Catch::Contains("inputs of other shapes need a new plan"));
    }
  }
}

TEST_CASE("the plan reports the kernels' scratch: Conv's im2col columns and a dequantized weight") {
  const Model m = test::single_node_model("Conv", test::gaussian_tensor({4, 2, 3, 3}, 1));
  const runtime::Session session(m);
  const std::map<std::string, Tensor> feeds = {{"x", test::gaussian_tensor({1, 2, 8, 8}, 2)}};
  // 2 channels x 9 kernel positions rows, 6 x 6 output positions columns.
  CHECK(session.plan_memory(feeds).scratch_bytes == 2 * 9 * 36 * sizeof(float));
  runtime::RunStats stats;
  session.run(feeds, &stats);
  CHECK(stats.peak_scratch_bytes == 2 * 9 * 36 * sizeof(float));
}
