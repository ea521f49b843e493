// Arena planning: every intermediate tensor gets an offset in one arena so that
// tensors alive at the same time never overlap. Greedy by size (as TensorFlow
// Lite Micro's GreedyMemoryPlanner): largest first, each at the lowest aligned
// offset that does not collide with an already placed, time-overlapping buffer.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace slmopt::runtime {

struct BufferLifetime {
  std::string name;
  uint64_t bytes = 0;
  size_t first = 0;  // index of the node that produces it
  size_t last = 0;   // index of the last node that reads it (>= first)
};

struct PlannedBuffer {
  BufferLifetime lifetime;
  uint64_t offset = 0;
};

struct MemoryPlan {
  std::vector<PlannedBuffer> buffers;
  uint64_t arena_bytes = 0;      // what a device must reserve
  uint64_t peak_live_bytes = 0;  // lower bound: the most bytes alive at one node
  uint64_t scratch_bytes = 0;    // kernels' working memory on top (Session::plan_memory)
  std::unordered_map<std::string, size_t> index;  // name -> buffers[i], filled by plan_greedy
  const PlannedBuffer* find(const std::string& name) const;
};

MemoryPlan plan_greedy(std::vector<BufferLifetime> lifetimes, uint64_t alignment = 64);

}  // namespace slmopt::runtime
