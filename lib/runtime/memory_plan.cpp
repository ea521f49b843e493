#include "runtime/memory_plan.hpp"

#include <algorithm>
#include <map>

namespace slmopt::runtime {

const PlannedBuffer* MemoryPlan::find(const std::string& name) const {
  if (!index.empty()) {
    const auto it = index.find(name);
    return it == index.end() ? nullptr : &buffers[it->second];
  }
  for (const auto& b : buffers)
    if (b.lifetime.name == name) return &b;
  return nullptr;
}

namespace {

// The placed buffers, found by the time they are alive. Those alive at step a
// (a segment tree over steps: each buffer sits in O(log T) nodes, a stabbing
// query walks one root-to-leaf path) plus those born in (a, b] (ordered by
// birth) are exactly the ones alive somewhere in [a, b]: O(log T + k) a query,
// where a scan of every placed buffer made a 200,000-node graph quadratic.
class LiveIndex {
 public:
  explicit LiveIndex(size_t steps) : size_(std::max<size_t>(1, steps)), nodes_(4 * size_) {}

  void add(size_t id, size_t first, size_t last) {
    insert(1, 0, size_ - 1, first, last, id);
    by_birth_.emplace(first, id);
  }

  // Appends the ids of buffers alive at some step of [first, last].
  void overlapping(size_t first, size_t last, std::vector<size_t>& out) const {
    size_t node = 1, lo = 0, hi = size_ - 1;
    while (true) {
      out.insert(out.end(), nodes_[node].begin(), nodes_[node].end());
      if (lo == hi) break;
      const size_t mid = (lo + hi) / 2;
      if (first <= mid) {
        node = 2 * node;
        hi = mid;
      } else {
        node = 2 * node + 1;
        lo = mid + 1;
      }
    }
    for (auto it = by_birth_.upper_bound(first); it != by_birth_.end() && it->first <= last; ++it) out.push_back(it->second);
  }

 private:
  void insert(size_t node, size_t lo, size_t hi, size_t first, size_t last, size_t id) {
    if (last < lo || hi < first) return;
    if (first <= lo && hi <= last) {
      nodes_[node].push_back(id);
      return;
    }
    const size_t mid = (lo + hi) / 2;
    insert(2 * node, lo, mid, first, last, id);
    insert(2 * node + 1, mid + 1, hi, first, last, id);
  }

  size_t size_;
  std::vector<std::vector<size_t>> nodes_;
  std::multimap<size_t, size_t> by_birth_;
};

}  // namespace

MemoryPlan plan_greedy(std::vector<BufferLifetime> lifetimes, uint64_t alignment) {
  if (alignment == 0) alignment = 1;
  // Largest first; ties by birth then name so the plan is deterministic.
  std::sort(lifetimes.begin(), lifetimes.end(), [](const BufferLifetime& a, const BufferLifetime& b) {
    if (a.bytes != b.bytes) return a.bytes > b.bytes;
    if (a.first != b.first) return a.first < b.first;
    return a.name < b.name;
  });
  size_t steps = 0;
  for (const auto& lt : lifetimes) steps = std::max(steps, lt.last + 1);
  MemoryPlan plan;
  plan.buffers.reserve(lifetimes.size());
  LiveIndex placed(steps);
  std::vector<size_t> alive;
  for (const auto& lt : lifetimes) {
    // Buffers already placed that are alive at the same time, by offset.
    alive.clear();
    placed.overlapping(lt.first, lt.last, alive);
    std::vector<const PlannedBuffer*> clashes;
    for (size_t id : alive)
      if (plan.buffers[id].lifetime.bytes > 0) clashes.push_back(&plan.buffers[id]);
    // Ties by offset broken by size and birth: the order, and so the plan, never depends on the index's.
    std::sort(clashes.begin(), clashes.end(), [](auto* a, auto* b) {
      if (a->offset != b->offset) return a->offset < b->offset;
      if (a->lifetime.bytes != b->lifetime.bytes) return a->lifetime.bytes < b->lifetime.bytes;
      return a->lifetime.first < b->lifetime.first;
    });
    uint64_t offset = 0;
    for (const auto* c : clashes) {
      if (offset + lt.bytes <= c->offset) break;  // fits in the gap before c
      offset = std::max(offset, (c->offset + c->lifetime.bytes + alignment - 1) / alignment * alignment);
    }
    placed.add(plan.buffers.size(), lt.first, lt.last);
    plan.buffers.push_back({lt, offset});
    plan.arena_bytes = std::max(plan.arena_bytes, offset + lt.bytes);
  }
  // The most bytes alive at any one node: a sweep over births and deaths.
  std::vector<int64_t> change(steps + 1, 0);
  for (const auto& lt : lifetimes) {
    change[lt.first] += static_cast<int64_t>(lt.bytes);
    change[lt.last + 1] -= static_cast<int64_t>(lt.bytes);
  }
  int64_t live = 0;
  for (size_t n = 0; n < steps; ++n) {
    live += change[n];
    plan.peak_live_bytes = std::max(plan.peak_live_bytes, static_cast<uint64_t>(live));
  }
  for (size_t i = 0; i < plan.buffers.size(); ++i) plan.index.emplace(plan.buffers[i].lifetime.name, i);
  return plan;
}

}  // namespace slmopt::runtime
