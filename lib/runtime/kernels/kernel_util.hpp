// Small helpers shared by kernels: axes, strides and broadcasting.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "runtime/kernel_registry.hpp"
#include "runtime/numeric.hpp"

namespace slmopt::runtime {

// Resolves a possibly negative axis against `rank`; fails the node when out of range.
int64_t normalize_axis(const OpContext& ctx, int64_t axis, int64_t rank);

std::vector<int64_t> strides_of(const std::vector<int64_t>& shape);

// Numpy-style broadcast of two shapes; fails the node when incompatible.
std::vector<int64_t> broadcast_shape(const OpContext& ctx, const std::vector<int64_t>& a,
                                     const std::vector<int64_t>& b);

// Strides to read an input of shape `in` as if it had shape `out` (0 on broadcast dims).
std::vector<int64_t> broadcast_strides(const std::vector<int64_t>& in, const std::vector<int64_t>& out);

// Calls fn(out_index, offset_a, offset_b) for every element of `out` in order.
template <class Fn>
void for_each_broadcast2(const std::vector<int64_t>& out, const std::vector<int64_t>& sa,
                         const std::vector<int64_t>& sb, Fn&& fn) {
  const size_t rank = out.size();
  int64_t total = 1;
  for (int64_t d : out) total *= d;
  if (total == 0) return;
  std::vector<int64_t> idx(rank, 0);
  int64_t oa = 0, ob = 0;
  for (int64_t i = 0; i < total; ++i) {
    fn(i, oa, ob);
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < out[d]) {
        oa += sa[d];
        ob += sb[d];
        break;
      }
      oa -= sa[d] * (out[d] - 1);
      ob -= sb[d] * (out[d] - 1);
      idx[d] = 0;
    }
  }
}

// Every element as double (any numeric type).
std::vector<double> doubles_of(const Tensor& t);

// Copies `in` broadcast to shape `out` (any dtype, including strings).
Tensor broadcast_to(const OpContext& ctx, const Tensor& in, const std::vector<int64_t>& out);

}  // namespace slmopt::runtime
