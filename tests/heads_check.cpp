#include "heads_check.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

#include "calib/collector.hpp"
#include "eval/metrics.hpp"
#include "passes/prune.hpp"
#include "runtime/constants.hpp"
#include "runtime/session.hpp"

namespace slmopt::test {
namespace {

constexpr int64_t kHeads = 4, kHeadDim = 8, kWidth = 32;

Tensor run(const Model& m, const calib::Sample& feeds) { return runtime::Session(m).run(feeds).at("y"); }

int64_t parameters_of(const Model& m) {  // weights, not the shape constants
  int64_t n = 0;
  for (const auto& t : m.graph.initializers) n += t.tensor.dtype() == DType::F32 ? t.tensor.numel() : 0;
  return n;
}

// Which query heads' output rows of `before` reappear, in order, in `after`.
std::vector<int64_t> surviving_heads(const Tensor& before, const Tensor& after) {
  std::vector<int64_t> kept;
  const int64_t block = kHeadDim * kWidth;
  for (int64_t slot = 0; slot < after.numel() / block; ++slot)
    for (int64_t head = 0; head < kHeads; ++head)
      if (std::equal(after.data<float>() + slot * block, after.data<float>() + (slot + 1) * block,
                     before.data<float>() + head * block))
        kept.push_back(head);
  return kept;
}

}  // namespace

void check_heads_pruned(const Model& m, const std::function<calib::Sample(uint32_t)>& inputs, HeadsLayout layout,
                        const std::function<void(const Model&)>& also) {
  const int64_t per_kv = kHeads / layout.kv_heads, kept_kv = layout.kv_heads / 2;
  const calib::Sample feeds = inputs(3);
  passes::PruneConfig config;
  config.structured = "heads";
  config.sparsity = "0";
  passes::PruneReport report;
  CHECK(run(passes::prune_model(m, config, report), feeds).bit_equal(run(m, feeds)));  // 0 %: the same model
  REQUIRE(report.groups.size() == 2);
  CHECK(report.groups[0].channels == layout.kv_heads);

  for (const char* method : {"magnitude", "wanda"}) {
    INFO(method);
    config.sparsity = "0.5";
    config.method = method;
    calib::CalibStats stats;
    if (std::string(method) == "wanda") {
      stats = calib::collect_stats(m, {inputs(5), inputs(6)}, {});
      config.stats = &stats;
    }
    report = {};
    const Model p = passes::prune_model(m, config, report);
    REQUIRE(report.groups.size() == 2);
    Model reference = m;
    for (const auto& group : report.groups) {
      CHECK(group.kept == kept_kv);
      REQUIRE(group.producers.size() == (layout.packed ? 1 : 3));
      int64_t columns = 0;  // the kept query heads' and key/value heads' columns
      for (const auto& name : group.producers) {
        const Tensor& w = p.graph.find_initializer(name)->tensor;
        REQUIRE(w.rank() == 2);
        CHECK(w.shape()[0] == kWidth);
        columns += w.shape()[1];
      }
      CHECK(columns == (kept_kv * per_kv + 2 * kept_kv) * kHeadDim);
      // The kept heads are those whose output rows came over; the reference zeroes the others'.
      const std::string& o = group.consumers.at(0);
      const Tensor& after = p.graph.find_initializer(o)->tensor;
      REQUIRE(after.shape() == std::vector<int64_t>{kept_kv * per_kv * kHeadDim, kWidth});
      const std::vector<int64_t> kept = surviving_heads(m.graph.find_initializer(o)->tensor, after);
      REQUIRE(kept.size() == static_cast<size_t>(kept_kv * per_kv));
      float* wo = const_cast<NamedTensor*>(reference.graph.find_initializer(o))->tensor.mutable_data<float>();
      for (int64_t head = 0; head < kHeads; ++head)
        if (std::find(kept.begin(), kept.end(), head) == kept.end())
          std::fill(wo + head * kHeadDim * kWidth, wo + (head + 1) * kHeadDim * kWidth, 0.0f);
    }
    // Per layer: 2 query heads' q columns (and biases) and output rows, and
    // their key/value heads' k and v columns (and biases).
    const int64_t removed_kv = layout.kv_heads - kept_kv, bias = layout.biases ? kHeadDim : 0;
    Model normalized = m;  // float Constant nodes (scales) count as the pass sees them
    runtime::constants_to_initializers(normalized);
    CHECK(parameters_of(p) == parameters_of(normalized) - 2 * (2 * (kWidth * kHeadDim + bias + kHeadDim * kWidth) +
                                                      2 * removed_kv * (kWidth * kHeadDim + bias)));
    CHECK(eval::compare_tensors(run(reference, feeds), run(p, feeds))["rel_l2"] < 1e-5);
    if (also) also(p);
  }
}

}  // namespace slmopt::test
