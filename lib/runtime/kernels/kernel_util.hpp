// Small helpers shared by kernels: axes, strides and broadcasting.
#pragma once

#include <algorithm>
#include <array>
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

// Calls fn(out_offset, offsets) once per innermost row of `out` (its last
// axis; a scalar is one row of one), with each input's offset of that row;
// inside the row, input k steps by strides[k].back(). One odometer step per
// row instead of per element keeps broadcasting out of the inner loop.
template <size_t N, class Fn>
void for_each_broadcast_row(const std::vector<int64_t>& out, const std::array<std::vector<int64_t>, N>& strides, Fn&& fn) {
  int64_t total = 1;
  for (int64_t d : out) total *= d;
  if (total == 0) return;
  const size_t outer_rank = out.empty() ? 0 : out.size() - 1;
  const int64_t inner = out.empty() ? 1 : out.back();
  std::vector<int64_t> idx(outer_rank, 0);
  std::array<int64_t, N> offsets{};
  for (int64_t row = 0; row < total / inner; ++row) {
    fn(row * inner, offsets);
    for (size_t d = outer_rank; d-- > 0;) {
      if (++idx[d] < out[d]) {
        for (size_t k = 0; k < N; ++k) offsets[k] += strides[k][d];
        break;
      }
      for (size_t k = 0; k < N; ++k) offsets[k] -= strides[k][d] * (out[d] - 1);
      idx[d] = 0;
    }
  }
}

// The step of the last axis in broadcast strides (0 for a scalar).
inline int64_t inner_step(const std::vector<int64_t>& strides) { return strides.empty() ? 0 : strides.back(); }

// Every element as double (any numeric type).
std::vector<double> doubles_of(const Tensor& t);

// Copies `in` broadcast to shape `out` (any dtype, including strings).
Tensor broadcast_to(const OpContext& ctx, const Tensor& in, const std::vector<int64_t>& out);

}  // namespace slmopt::runtime
