#include "runtime/memory_plan.hpp"

#include <algorithm>

namespace slmopt::runtime {

const PlannedBuffer* MemoryPlan::find(const std::string& name) const {
  for (const auto& b : buffers)
    if (b.lifetime.name == name) return &b;
  return nullptr;
}

MemoryPlan plan_greedy(std::vector<BufferLifetime> lifetimes, uint64_t alignment) {
  if (alignment == 0) alignment = 1;
  // Largest first; ties by birth then name so the plan is deterministic.
  std::sort(lifetimes.begin(), lifetimes.end(), [](const BufferLifetime& a, const BufferLifetime& b) {
    if (a.bytes != b.bytes) return a.bytes > b.bytes;
    if (a.first != b.first) return a.first < b.first;
    return a.name < b.name;
  });
  MemoryPlan plan;
  for (const auto& lt : lifetimes) {
    // Buffers already placed that are alive at the same time, by offset.
    std::vector<const PlannedBuffer*> clashes;
    for (const auto& p : plan.buffers)
      if (p.lifetime.first <= lt.last && lt.first <= p.lifetime.last && p.lifetime.bytes > 0) clashes.push_back(&p);
    std::sort(clashes.begin(), clashes.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    uint64_t offset = 0;
    for (const auto* c : clashes) {
      if (offset + lt.bytes <= c->offset) break;  // fits in the gap before c
      offset = std::max(offset, (c->offset + c->lifetime.bytes + alignment - 1) / alignment * alignment);
    }
    plan.buffers.push_back({lt, offset});
    plan.arena_bytes = std::max(plan.arena_bytes, offset + lt.bytes);
  }
  // The most bytes alive at any one node.
  size_t last_node = 0;
  for (const auto& lt : lifetimes) last_node = std::max(last_node, lt.last);
  for (size_t n = 0; n <= last_node && !lifetimes.empty(); ++n) {
    uint64_t live = 0;
    for (const auto& lt : lifetimes)
      if (lt.first <= n && n <= lt.last) live += lt.bytes;
    plan.peak_live_bytes = std::max(plan.peak_live_bytes, live);
  }
  return plan;
}

}  // namespace slmopt::runtime
