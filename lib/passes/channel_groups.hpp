// Channel groups for structured pruning: the output channels of one or more
// weight layers (Conv, Gemm, MatMul), followed through ops that treat every
// channel alike (activations, pooling, BatchNormalization, elementwise ops
// with a per-channel or scalar constant, and the product of two such values,
// as in a SwiGLU feed-forward) to the layers that read them (Conv input
// channels, MatMul/Gemm input rows). Removing channel c from every tensor of
// the group removes exactly that channel's contribution; anything else on
// the way (a reshape, a normalization over channels, a graph output) makes
// the group unprunable, and `why_not` says which node.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/ir.hpp"

namespace slmopt::passes {

// An initializer to cut along one axis.
struct ChannelSlice {
  std::string tensor;
  int64_t axis = 0;
};

struct ChannelGroup {
  std::vector<ChannelSlice> producers;  // weights whose output channels the group is
  std::vector<ChannelSlice> biases;     // the producers' biases
  std::vector<ChannelSlice> params;     // per-channel constants on the way (BatchNormalization, Add, Mul ...)
  std::vector<ChannelSlice> consumers;  // weights that read the channels as inputs
  std::vector<std::string> consumer_nodes;
  std::vector<std::string> values;      // the values that carry the channels
  int64_t channels = 0;
  std::string why_not;                  // set when the group cannot be pruned
};

std::vector<ChannelGroup> find_channel_groups(const Graph& graph);

// Keeps only `keep` (ascending indices) along each slice's axis, in place.
void shrink_group(Graph& graph, const ChannelGroup& group, const std::vector<int64_t>& keep);

// The weights of channel c, for importance: rows (or columns) of every
// producer and consumer, as floats.
std::vector<float> channel_slice(const Tensor& t, int64_t axis, int64_t c);

}  // namespace slmopt::passes
