// Ops that move elements without arithmetic: Transpose, Concat, Split, Slice,
// Gather, GatherElements, ScatterND, Tile, Pad, DepthToSpace, SpaceToDepth,
// Trilu, CumSum, TopK. Element-type agnostic where they only copy bytes.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "quant/quantize_weight.hpp"
#include "runtime/kernels/kernel_util.hpp"
#include "runtime/kernels/quantized.hpp"

namespace slmopt::runtime {
namespace {

// Builds an output of `shape` where element i is src[index_of(i)].
template <class IndexFn>
Tensor gather_elements_by(const Tensor& src, const std::vector<int64_t>& shape, IndexFn index_of) {
  if (src.dtype() == DType::String) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<std::string> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = src.strings()[static_cast<size_t>(index_of(i))];
    return Tensor::from_strings(shape, std::move(v));
  }
  Tensor out(src.dtype(), shape);
  const size_t es = static_cast<size_t>(dtype_size(src.dtype()));
  uint8_t* dst = out.mutable_bytes();
  const uint8_t* s = src.bytes();
  for (int64_t i = 0; i < out.numel(); ++i)
    std::memcpy(dst + static_cast<size_t>(i) * es, s + static_cast<size_t>(index_of(i)) * es, es);
  return out;
}

// dst (row-major, `shape`) = the elements of src at `src_strides`, a row of
// the last dim at a time. Elements are copied as unsigned integers of their
// size (bit-exact for every type).
template <class E>
void copy_strided(const E* src, E* dst, const std::vector<int64_t>& shape, const std::vector<int64_t>& src_strides) {
  const int64_t inner = shape.back(), step = inner_step(src_strides);
  for_each_broadcast_row<1>(shape, {src_strides}, [&](int64_t out_offset, const std::array<int64_t, 1>& from) {
    const E* s = src + from[0];
    E* d = dst + out_offset;
    for (int64_t j = 0; j < inner; ++j) d[j] = s[j * step];
  });
}

// Multi-index of flat index i in `shape`, written into idx.
void unravel(int64_t i, const std::vector<int64_t>& shape, std::vector<int64_t>& idx) {
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] ? i % shape[d] : 0;
    i = shape[d] ? i / shape[d] : 0;
  }
}

void transpose_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const size_t rank = x.shape().size();
  std::vector<int64_t> perm(rank);
  std::iota(perm.rbegin(), perm.rend(), 0);
  perm = c.attr_ints("perm", perm);
  if (perm.size() != rank) c.fail("perm must have one entry per dim");
  std::vector<int64_t> out_shape(rank), src_strides = strides_of(x.shape()), perm_strides(rank);
  for (size_t d = 0; d < rank; ++d) {
    const auto p = static_cast<size_t>(normalize_axis(c, perm[d], static_cast<int64_t>(rank)));
    out_shape[d] = x.shape()[p];
    perm_strides[d] = src_strides[p];
  }
  if (x.dtype() == DType::String || rank == 0) {
    std::vector<int64_t> zero(rank, 0);
    std::vector<int64_t> from(static_cast<size_t>(x.numel()));
    for_each_broadcast2(out_shape, perm_strides, zero, [&](int64_t i, int64_t s, int64_t) { from[static_cast<size_t>(i)] = s; });
    c.output(0) = gather_elements_by(x, out_shape, [&](int64_t i) { return from[static_cast<size_t>(i)]; });
    return;
  }
  Tensor out(x.dtype(), out_shape);
  switch (dtype_size(x.dtype())) {
    case 1: copy_strided(x.data<uint8_t>(), out.mutable_data<uint8_t>(), out_shape, perm_strides); break;
    case 2: copy_strided(x.data<uint16_t>(), out.mutable_data<uint16_t>(), out_shape, perm_strides); break;
    case 4: copy_strided(x.data<uint32_t>(), out.mutable_data<uint32_t>(), out_shape, perm_strides); break;
    case 8: copy_strided(x.data<uint64_t>(), out.mutable_data<uint64_t>(), out_shape, perm_strides); break;
    default: c.fail(std::string("cannot transpose ") + dtype_name(x.dtype()));
  }
  c.output(0) = std::move(out);
}

void concat_op(OpContext& c) {
  if (c.input_count() == 0) c.fail("needs inputs");
  const Tensor& first = c.input(0);
  const int64_t axis = normalize_axis(c, c.attr_int("axis", 0), first.rank());
  std::vector<int64_t> shape = first.shape();
  shape[static_cast<size_t>(axis)] = 0;
  for (size_t i = 0; i < c.input_count(); ++i) {
    const Tensor& t = c.input(i);
    if (t.dtype() != first.dtype() || t.rank() != first.rank()) c.fail("inputs differ in type or rank");
    for (int64_t d = 0; d < t.rank(); ++d)
      if (d != axis && t.shape()[static_cast<size_t>(d)] != first.shape()[static_cast<size_t>(d)])
        c.fail("inputs differ outside the concat axis");
    shape[static_cast<size_t>(axis)] += t.shape()[static_cast<size_t>(axis)];
  }
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < first.rank(); ++d)
    if (d < axis) outer *= shape[static_cast<size_t>(d)];
    else if (d > axis) inner *= shape[static_cast<size_t>(d)];
  if (first.dtype() == DType::String) {
    std::vector<std::string> v;
    for (int64_t o = 0; o < outer; ++o)
      for (size_t i = 0; i < c.input_count(); ++i) {
        const auto block = static_cast<size_t>(c.input(i).shape()[static_cast<size_t>(axis)] * inner);
        const auto& strings = c.input(i).strings();
        v.insert(v.end(), strings.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(o) * block),
                 strings.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(o + 1) * block));
      }
    c.output(0) = Tensor::from_strings(shape, std::move(v));
    return;
  }
  // Each input contributes one contiguous block per outer index.
  Tensor out(first.dtype(), shape);
  const auto es = static_cast<size_t>(dtype_size(first.dtype()));
  uint8_t* dst = out.numel() ? out.mutable_bytes() : nullptr;
  for (int64_t o = 0; o < outer; ++o)
    for (size_t i = 0; i < c.input_count(); ++i) {
      const Tensor& t = c.input(i);
      const size_t block = static_cast<size_t>(t.shape()[static_cast<size_t>(axis)] * inner) * es;
      if (block == 0) continue;
      std::memcpy(dst, t.bytes() + static_cast<size_t>(o) * block, block);
      dst += block;
    }
  c.output(0) = std::move(out);
}

// Copies a sub-block [start, start+len) along `axis` of x.
Tensor slice_axis(const Tensor& x, int64_t axis, int64_t start, int64_t len) {
  std::vector<int64_t> shape = x.shape();
  shape[static_cast<size_t>(axis)] = len;
  int64_t inner = 1;
  for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t src_len = x.shape()[static_cast<size_t>(axis)];
  return gather_elements_by(x, shape, [&](int64_t i) {
    const int64_t in = i % inner, rest = i / inner;
    const int64_t k = rest % len, o = rest / len;
    return (o * src_len + start + k) * inner + in;
  });
}

void split_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const int64_t axis = normalize_axis(c, c.attr_int("axis", 0), x.rank());
  const int64_t dim = x.shape()[static_cast<size_t>(axis)];
  std::vector<int64_t> sizes;
  if (c.opset >= 13 && c.has_input(1)) sizes = int_values(c.input(1));
  else if (c.opset < 13) sizes = c.attr_ints("split");
  const int64_t n = static_cast<int64_t>(c.outputs.size());
  if (sizes.empty()) {
    const int64_t parts = c.attr_int("num_outputs", n);
    const int64_t each = (dim + parts - 1) / parts;
    for (int64_t i = 0; i < n; ++i) sizes.push_back(std::max<int64_t>(0, std::min(each, dim - i * each)));
  }
  if (static_cast<int64_t>(sizes.size()) != n || std::accumulate(sizes.begin(), sizes.end(), int64_t{0}) != dim)
    c.fail("split sizes do not add up to the axis length");
  int64_t start = 0;
  for (int64_t i = 0; i < n; ++i) {
    c.output(static_cast<size_t>(i)) = slice_axis(x, axis, start, sizes[static_cast<size_t>(i)]);
    start += sizes[static_cast<size_t>(i)];
  }
}

void slice_op(OpContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> starts, ends, axes, steps;
  if (c.opset > 0 && c.opset < 10) {
    starts = c.attr_ints("starts");
    ends = c.attr_ints("ends");
    axes = c.attr_ints("axes");
  } else {
    starts = int_values(c.input(1));
    ends = int_values(c.input(2));
    if (c.has_input(3)) axes = int_values(c.input(3));
    if (c.has_input(4)) steps = int_values(c.input(4));
  }
  if (axes.empty()) {
    axes.resize(starts.size());
    std::iota(axes.begin(), axes.end(), 0);
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    c.fail("starts, ends, axes and steps differ in length");
  const size_t rank = x.shape().size();
  std::vector<int64_t> begin(rank, 0), step(rank, 1), shape = x.shape();
  for (size_t i = 0; i < starts.size(); ++i) {
    const auto a = static_cast<size_t>(normalize_axis(c, axes[i], static_cast<int64_t>(rank)));
    const int64_t dim = x.shape()[a], s = steps[i];
    if (s == 0) c.fail("step must not be zero");
    auto clampi = [&](int64_t v, int64_t lo, int64_t hi) {
      if (v < 0) v += dim;
      return std::clamp(v, lo, hi);
    };
    int64_t b, e;
    if (s > 0) {
      b = clampi(starts[i] < -dim ? -dim : starts[i], 0, dim);
      e = clampi(ends[i] < -dim ? -dim : ends[i], 0, dim);
      shape[a] = e > b ? (e - b + s - 1) / s : 0;
    } else {
      b = clampi(starts[i] < -dim ? -dim - 1 : starts[i], -1, dim - 1);
      e = ends[i] < -dim ? -1 : clampi(ends[i], -1, dim - 1);
      shape[a] = b > e ? (b - e + (-s) - 1) / (-s) : 0;
    }
    begin[a] = b;
    step[a] = s;
  }
  const auto strides = strides_of(x.shape());
  // A row of the last axis at a time from the first element's offset, each
  // axis stepping by its step times its stride (negative steps walk back).
  const int es = dtype_size(x.dtype());
  if (rank > 0 && (es == 1 || es == 2 || es == 4 || es == 8)) {
    Tensor out(x.dtype(), shape);
    if (out.numel() > 0) {
      int64_t first = 0;
      std::vector<int64_t> src_strides(rank);
      for (size_t d = 0; d < rank; ++d) {
        first += begin[d] * strides[d];
        src_strides[d] = step[d] * strides[d];
      }
      switch (es) {
        case 1: copy_strided(x.data<uint8_t>() + first, out.mutable_data<uint8_t>(), shape, src_strides); break;
        case 2: copy_strided(x.data<uint16_t>() + first, out.mutable_data<uint16_t>(), shape, src_strides); break;
        case 4: copy_strided(x.data<uint32_t>() + first, out.mutable_data<uint32_t>(), shape, src_strides); break;
        default: copy_strided(x.data<uint64_t>() + first, out.mutable_data<uint64_t>(), shape, src_strides); break;
      }
    }
    c.output(0) = std::move(out);
    return;
  }
  std::vector<int64_t> idx(rank);  // strings: one element at a time
  c.output(0) = gather_elements_by(x, shape, [&](int64_t i) {
    unravel(i, shape, idx);
    int64_t off = 0;
    for (size_t d = 0; d < rank; ++d) off += (begin[d] + idx[d] * step[d]) * strides[d];
    return off;
  });
}

void gather_op(OpContext& c) {
  if (c.input(0).is_quantized() && gather_quantized(c)) return;
  const Tensor x = quant::dequantize(c.input(0));
  const auto indices = int_values(c.input(1));
  const int64_t axis = normalize_axis(c, c.attr_int("axis", 0), x.rank());
  const int64_t dim = x.shape()[static_cast<size_t>(axis)];
  std::vector<int64_t> shape(x.shape().begin(), x.shape().begin() + axis);
  shape.insert(shape.end(), c.input(1).shape().begin(), c.input(1).shape().end());
  shape.insert(shape.end(), x.shape().begin() + axis + 1, x.shape().end());
  int64_t inner = 1;
  for (size_t d = static_cast<size_t>(axis) + 1; d < x.shape().size(); ++d) inner *= x.shape()[d];
  const int64_t n_idx = static_cast<int64_t>(indices.size());
  for (int64_t v : indices)
    if (v < -dim || v >= dim) c.fail("index " + std::to_string(v) + " is out of range for a dim of " + std::to_string(dim));
  c.output(0) = gather_elements_by(x, shape, [&](int64_t i) {
    const int64_t in = i % inner, rest = i / inner;
    const int64_t k = rest % n_idx, o = rest / n_idx;
    int64_t v = indices[static_cast<size_t>(k)];
    if (v < 0) v += dim;
    return (o * dim + v) * inner + in;
  });
}

void gather_elements_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const Tensor& ind = c.input(1);
  const auto indices = int_values(ind);
  const int64_t axis = normalize_axis(c, c.attr_int("axis", 0), x.rank());
  if (ind.rank() != x.rank()) c.fail("indices must have the data's rank");
  const int64_t dim = x.shape()[static_cast<size_t>(axis)];
  const auto strides = strides_of(x.shape());
  std::vector<int64_t> idx(ind.shape().size());
  c.output(0) = gather_elements_by(x, ind.shape(), [&](int64_t i) {
    unravel(i, ind.shape(), idx);
    int64_t v = indices[static_cast<size_t>(i)];
    if (v < -dim || v >= dim) c.fail("index " + std::to_string(v) + " is out of range");
    if (v < 0) v += dim;
    idx[static_cast<size_t>(axis)] = v;
    int64_t off = 0;
    for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * strides[d];
    return off;
  });
}

void scatter_nd_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const Tensor& ind = c.input(1);
  const Tensor& upd = c.input(2);
  const auto indices = int_values(ind);
  // Decided once, not per element.
  enum class Reduce { None, Add, Mul, Max, Min };
  const std::string reduction = c.attr_string("reduction", "none");
  const Reduce reduce = reduction == "add"   ? Reduce::Add
                        : reduction == "mul" ? Reduce::Mul
                        : reduction == "max" ? Reduce::Max
                        : reduction == "min" ? Reduce::Min
                                             : Reduce::None;
  if (reduce == Reduce::None && reduction != "none") c.fail("unknown reduction '" + reduction + "'");
  if (ind.rank() < 1) c.fail("indices must have rank >= 1");
  const int64_t k = ind.shape().back();
  if (k > x.rank()) c.fail("index depth exceeds the data rank");
  int64_t slice = 1;
  for (int64_t d = k; d < x.rank(); ++d) slice *= x.shape()[static_cast<size_t>(d)];
  const auto strides = strides_of(x.shape());
  Tensor out = widen_to_float(x);
  Tensor u = widen_to_float(upd);
  out = Tensor(out);  // own a writable copy
  out.mutable_bytes();
  const int64_t n = k ? static_cast<int64_t>(indices.size()) / k : 0;
  if (u.numel() != n * slice) c.fail("updates do not match indices");
  visit_numeric(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* po = out.mutable_data<T>();
    const T* pu = u.data<T>();
    for (int64_t i = 0; i < n; ++i) {
      int64_t off = 0;
      for (int64_t j = 0; j < k; ++j) {
        int64_t v = indices[static_cast<size_t>(i * k + j)];
        const int64_t dim = x.shape()[static_cast<size_t>(j)];
        if (v < -dim || v >= dim) c.fail("index out of range");
        if (v < 0) v += dim;
        off += v * strides[static_cast<size_t>(j)];
      }
      T* dst = po + off;
      const T* src = pu + i * slice;
      if constexpr (std::is_same_v<T, bool>) {
        std::copy_n(src, slice, dst);
      } else {
        switch (reduce) {
          case Reduce::None: std::copy_n(src, slice, dst); break;
          case Reduce::Add: for (int64_t e = 0; e < slice; ++e) dst[e] = static_cast<T>(dst[e] + src[e]); break;
          case Reduce::Mul: for (int64_t e = 0; e < slice; ++e) dst[e] = static_cast<T>(dst[e] * src[e]); break;
          case Reduce::Max: for (int64_t e = 0; e < slice; ++e) dst[e] = std::max(dst[e], src[e]); break;
          case Reduce::Min: for (int64_t e = 0; e < slice; ++e) dst[e] = std::min(dst[e], src[e]); break;
        }
      }
    }
  });
  c.output(0) = narrow_from_float(out, x.dtype());
}

void tile_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const auto repeats = int_values(c.input(1));
  if (static_cast<int64_t>(repeats.size()) != x.rank()) c.fail("repeats must have one entry per dim");
  std::vector<int64_t> shape = x.shape();
  for (size_t d = 0; d < shape.size(); ++d) {
    if (repeats[d] < 0) c.fail("repeats must be non-negative");
    shape[d] *= repeats[d];
  }
  const auto strides = strides_of(x.shape());
  std::vector<int64_t> idx(shape.size());
  c.output(0) = gather_elements_by(x, shape, [&](int64_t i) {
    unravel(i, shape, idx);
    int64_t off = 0;
    for (size_t d = 0; d < idx.size(); ++d) off += (idx[d] % x.shape()[d]) * strides[d];
    return off;
  });
}

void pad_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const size_t rank = x.shape().size();
  std::vector<int64_t> pads;
  double value = 0;
  if (c.opset > 0 && c.opset < 11) {
    pads = c.attr_ints("pads");
    value = c.attr_float("value", 0.0f);
  } else {
    pads = int_values(c.input(1));
    if (c.has_input(2) && c.input(2).numel() > 0) value = scalar_value(widen_to_float(c.input(2)));
  }
  std::vector<int64_t> axes(rank);
  std::iota(axes.begin(), axes.end(), 0);
  if (c.opset >= 18 && c.has_input(3)) axes = int_values(c.input(3));
  if (pads.size() != 2 * axes.size()) c.fail("pads must have two entries per padded axis");
  std::vector<int64_t> before(rank, 0), after(rank, 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    const auto a = static_cast<size_t>(normalize_axis(c, axes[i], static_cast<int64_t>(rank)));
    before[a] = pads[i];
    after[a] = pads[i + axes.size()];
  }
  const std::string mode = c.attr_string("mode", "constant");
  std::vector<int64_t> shape(rank);
  for (size_t d = 0; d < rank; ++d) {
    shape[d] = x.shape()[d] + before[d] + after[d];
    if (shape[d] < 0) c.fail("negative output dim");
  }
  Tensor wide = widen_to_float(x);
  Tensor out(wide.dtype(), shape);
  const auto strides = strides_of(x.shape());
  std::vector<int64_t> idx(rank);
  visit_numeric(wide.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = wide.data<T>();
    T* po = out.mutable_data<T>();
    for (int64_t i = 0; i < out.numel(); ++i) {
      unravel(i, shape, idx);
      int64_t off = 0;
      bool outside = false;
      for (size_t d = 0; d < rank; ++d) {
        int64_t p = idx[d] - before[d];
        const int64_t n = x.shape()[d];
        if (p < 0 || p >= n) {
          if (mode == "constant" || n == 0) {
            outside = true;
            break;
          } else if (mode == "edge") {
            p = std::clamp<int64_t>(p, 0, n - 1);
          } else if (mode == "reflect") {
            if (n == 1) p = 0;
            else {
              const int64_t period = 2 * (n - 1);
              p = ((p % period) + period) % period;
              if (p >= n) p = period - p;
            }
          } else if (mode == "wrap") {
            p = ((p % n) + n) % n;
          } else {
            c.fail("unknown mode '" + mode + "'");
          }
        }
        off += p * strides[d];
      }
      po[i] = outside ? static_cast<T>(value) : px[off];
    }
  });
  c.output(0) = narrow_from_float(out, x.dtype());
}

void depth_space(OpContext& c, bool to_space) {
  const Tensor& x = c.input(0);
  if (x.rank() != 4) c.fail("input must be 4-D");
  const int64_t b = c.attr_int("blocksize", 0);
  if (b <= 0) c.fail("blocksize must be positive");
  const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const bool crd = c.attr_string("mode", "DCR") == "CRD";
  std::vector<int64_t> shape;
  if (to_space) {
    if (C % (b * b)) c.fail("channels must be divisible by blocksize^2");
    shape = {N, C / (b * b), H * b, W * b};
  } else {
    if (H % b || W % b) c.fail("height and width must be divisible by blocksize");
    shape = {N, C * b * b, H / b, W / b};
  }
  std::vector<int64_t> idx(4);
  c.output(0) = gather_elements_by(x, shape, [&](int64_t i) {
    unravel(i, shape, idx);
    const int64_t n = idx[0], ch = idx[1], h = idx[2], w = idx[3];
    if (to_space) {
      const int64_t oc = shape[1], bh = h % b, bw = w % b;
      const int64_t src_c = crd ? ch * b * b + bh * b + bw : (bh * b + bw) * oc + ch;
      return ((n * C + src_c) * H + h / b) * W + w / b;
    }
    const int64_t bh = (ch / C) / b, bw = (ch / C) % b, src_c = ch % C;
    return ((n * C + src_c) * H + h * b + bh) * W + w * b + bw;
  });
}
void depth_to_space_op(OpContext& c) { depth_space(c, true); }
void space_to_depth_op(OpContext& c) { depth_space(c, false); }

void trilu_op(OpContext& c) {
  const Tensor& x = c.input(0);
  if (x.rank() < 2) c.fail("input must have rank >= 2");
  const int64_t k = c.has_input(1) ? int_values(c.input(1)).at(0) : 0;
  const bool upper = c.attr_int("upper", 1) != 0;
  const int64_t rows = x.shape()[x.shape().size() - 2], cols = x.shape().back();
  Tensor out(x.dtype(), x.shape());
  const size_t es = static_cast<size_t>(dtype_size(x.dtype()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t col = i % cols, row = (i / cols) % rows;
    const bool keep = upper ? col - row >= k : col - row <= k;
    if (keep) std::memcpy(out.mutable_bytes() + static_cast<size_t>(i) * es, x.bytes() + static_cast<size_t>(i) * es, es);
  }
  c.output(0) = std::move(out);
}

void cumsum_op(OpContext& c) {
  Tensor x = widen_to_float(c.input(0));
  const int64_t axis = normalize_axis(c, int_values(c.input(1)).at(0), x.rank());
  const bool exclusive = c.attr_int("exclusive", 0) != 0, reverse = c.attr_int("reverse", 0) != 0;
  int64_t outer = 1, len = x.shape()[static_cast<size_t>(axis)], inner = 1;
  for (int64_t d = 0; d < x.rank(); ++d)
    if (d < axis) outer *= x.shape()[static_cast<size_t>(d)];
    else if (d > axis) inner *= x.shape()[static_cast<size_t>(d)];
  Tensor out(x.dtype(), x.shape());
  visit_arithmetic(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < inner; ++in) {
        T acc = T(0);
        for (int64_t s = 0; s < len; ++s) {
          const int64_t k = reverse ? len - 1 - s : s;
          const int64_t at = (o * len + k) * inner + in;
          const T v = x.data<T>()[at];
          if (!exclusive) acc = static_cast<T>(acc + v);
          out.mutable_data<T>()[at] = acc;
          if (exclusive) acc = static_cast<T>(acc + v);
        }
      }
  });
  c.output(0) = narrow_from_float(out, c.input(0).dtype());
}

void topk_op(OpContext& c) {
  Tensor x = widen_to_float(c.input(0));
  const int64_t k = int_values(c.input(1)).at(0);
  const int64_t axis = normalize_axis(c, c.attr_int("axis", -1), x.rank());
  const bool largest = c.attr_int("largest", 1) != 0, sorted = c.attr_int("sorted", 1) != 0;
  int64_t outer = 1, len = x.shape()[static_cast<size_t>(axis)], inner = 1;
  if (k < 0 || k > len) c.fail("k is out of range");
  for (int64_t d = 0; d < x.rank(); ++d)
    if (d < axis) outer *= x.shape()[static_cast<size_t>(d)];
    else if (d > axis) inner *= x.shape()[static_cast<size_t>(d)];
  std::vector<int64_t> shape = x.shape();
  shape[static_cast<size_t>(axis)] = k;
  Tensor values(x.dtype(), shape), indices(DType::I64, shape);
  visit_numeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    std::vector<int64_t> order(static_cast<size_t>(len));
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < inner; ++in) {
        auto at = [&](int64_t i) { return x.data<T>()[(o * len + i) * inner + in]; };
        std::iota(order.begin(), order.end(), 0);
        // Ties keep the lower index first, as ONNX specifies.
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
          return largest ? at(a) > at(b) : at(a) < at(b);
        });
        (void)sorted;
        for (int64_t j = 0; j < k; ++j) {
          const int64_t dst = (o * k + j) * inner + in;
          values.mutable_data<T>()[dst] = at(order[static_cast<size_t>(j)]);
          indices.mutable_data<int64_t>()[dst] = order[static_cast<size_t>(j)];
        }
      }
  });
  c.output(0) = narrow_from_float(values, c.input(0).dtype());
  c.output(1) = std::move(indices);
}

}  // namespace

void register_data_movement(KernelRegistry& r) {
  const std::pair<const char*, KernelFn> ops[] = {
      {"Transpose", transpose_op}, {"Concat", concat_op},   {"Split", split_op},
      {"Slice", slice_op},         {"GatherElements", gather_elements_op},
      {"ScatterND", scatter_nd_op}, {"Tile", tile_op},      {"Pad", pad_op},
      {"DepthToSpace", depth_to_space_op}, {"SpaceToDepth", space_to_depth_op},
      {"Trilu", trilu_op},         {"CumSum", cumsum_op},   {"TopK", topk_op},
  };
  for (const auto& [name, fn] : ops) r.add("", name, fn);
  r.add("", "Gather", gather_op, QuantInputs::Consume);
}

}  // namespace slmopt::runtime
