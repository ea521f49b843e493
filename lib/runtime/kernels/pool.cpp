// MaxPool, AveragePool (any spatial rank, dilations, ceil_mode, padding) and the global pools.
#include <cmath>
#include <limits>

#include "runtime/kernels/kernel_util.hpp"
#include "runtime/kernels/window.hpp"

namespace slmopt::runtime {
namespace {

enum class PoolKind { Max, Average };

// Fast path for the most common case (2-D max pooling of f32 without indices);
// the generic loop below is its reference and the conformance tests cover both.
void max_pool_2d(const Tensor& x, const Window& win, const std::vector<int64_t>& in_sp, Tensor& out) {
  const int64_t H = in_sp[0], W = in_sp[1], OH = win.out[0], OW = win.out[1];
  const int64_t planes = x.shape()[0] * x.shape()[1];
  // The kernel positions inside the input, per output row and column: the
  // inner loops then need no bounds checks.
  auto inside = [](int64_t count, int64_t size, int64_t stride, int64_t pad, int64_t dil, int64_t kernel) {
    std::vector<std::pair<int64_t, int64_t>> ranges(static_cast<size_t>(count));
    for (int64_t o = 0; o < count; ++o) {
      int64_t lo = 0, hi = kernel;
      while (lo < hi && o * stride - pad + lo * dil < 0) ++lo;
      while (hi > lo && o * stride - pad + (hi - 1) * dil >= size) --hi;
      ranges[static_cast<size_t>(o)] = {lo, hi};
    }
    return ranges;
  };
  const auto rows = inside(OH, H, win.strides[0], win.pad_begin[0], win.dilations[0], win.kernel[0]);
  const auto cols = inside(OW, W, win.strides[1], win.pad_begin[1], win.dilations[1], win.kernel[1]);
  const float* px = x.data<float>();
  float* po = out.mutable_data<float>();
  for (int64_t p = 0; p < planes; ++p) {
    const float* src = px + p * H * W;
    float* dst = po + p * OH * OW;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const auto [kh0, kh1] = rows[static_cast<size_t>(oh)];
      const int64_t ih0 = oh * win.strides[0] - win.pad_begin[0];
      for (int64_t ow = 0; ow < OW; ++ow) {
        const auto [kw0, kw1] = cols[static_cast<size_t>(ow)];
        const int64_t iw0 = ow * win.strides[1] - win.pad_begin[1];
        if (kh0 == kh1 || kw0 == kw1) {  // the window covers only padding
          dst[oh * OW + ow] = -std::numeric_limits<float>::infinity();
          continue;
        }
        // The first value read, then `v > best ? v : best` (a branch-free
        // max): a NaN is kept only when it comes first, as the reference.
        float best = src[(ih0 + kh0 * win.dilations[0]) * W + iw0 + kw0 * win.dilations[1]];
        for (int64_t kh = kh0; kh < kh1; ++kh) {
          const float* line = src + (ih0 + kh * win.dilations[0]) * W + iw0;
          for (int64_t kw = kw0; kw < kw1; ++kw) {
            const float v = line[kw * win.dilations[1]];
            best = v > best ? v : best;
          }
        }
        dst[oh * OW + ow] = best;
      }
    }
  }
}

void pool(OpContext& c, PoolKind kind) {
  Tensor x = widen_to_float(c.input(0));
  if (x.rank() < 3) c.fail("input must have rank >= 3");
  const size_t nd = static_cast<size_t>(x.rank() - 2);
  auto kernel = c.attr_ints("kernel_shape");
  if (kernel.size() != nd) c.fail("kernel_shape must have one entry per spatial dim");
  std::vector<int64_t> in_sp(x.shape().begin() + 2, x.shape().end());
  Window win = compute_window(c, in_sp, kernel, c.attr_int("ceil_mode", 0) != 0);
  const bool count_pad = c.attr_int("count_include_pad", 0) != 0;
  std::vector<int64_t> out_shape = {x.shape()[0], x.shape()[1]};
  out_shape.insert(out_shape.end(), win.out.begin(), win.out.end());
  Tensor out(x.dtype(), out_shape);
  const bool want_indices = kind == PoolKind::Max && c.wants_output(1);
  Tensor indices = want_indices ? Tensor(DType::I64, out_shape) : Tensor();
  int64_t in_size = 1, out_size = 1, k_size = 1;
  for (size_t d = 0; d < nd; ++d) {
    in_size *= in_sp[d];
    out_size *= win.out[d];
    k_size *= kernel[d];
  }
  const auto in_strides = strides_of(in_sp);
  // storage_order 1 numbers the Indices output column-major within each plane.
  std::vector<int64_t> index_strides = in_strides;
  if (c.attr_int("storage_order", 0) != 0) {
    int64_t s = 1;
    for (size_t d = 0; d < nd; ++d) {
      index_strides[d] = s;
      s *= in_sp[d];
    }
  }
  if (kind == PoolKind::Average && !is_float(x.dtype())) c.fail("AveragePool takes float tensors");
  if (kind == PoolKind::Max && nd == 2 && !want_indices && x.dtype() == DType::F32) {
    max_pool_2d(x, win, in_sp, out);
    c.output(0) = narrow_from_float(out, c.input(0).dtype());
    return;
  }
  visit_numeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* po = out.mutable_data<T>();
    std::vector<int64_t> oidx(nd), kidx(nd);
    for (int64_t plane = 0; plane < x.shape()[0] * x.shape()[1]; ++plane) {
      const T* src = px + plane * in_size;
      for (int64_t op = 0; op < out_size; ++op) {
        int64_t r = op;
        for (size_t d = nd; d-- > 0;) {
          oidx[d] = r % win.out[d];
          r /= win.out[d];
        }
        double acc = kind == PoolKind::Max ? -std::numeric_limits<double>::infinity() : 0.0;
        int64_t best = -1, best_index = -1, count = 0, padded_count = 0;
        for (int64_t kp = 0; kp < k_size; ++kp) {
          int64_t rk = kp;
          for (size_t d = nd; d-- > 0;) {
            kidx[d] = rk % kernel[d];
            rk /= kernel[d];
          }
          int64_t offset = 0, index = 0;
          bool inside = true, in_padded = true;
          for (size_t d = 0; d < nd; ++d) {
            const int64_t pos = oidx[d] * win.strides[d] - win.pad_begin[d] + kidx[d] * win.dilations[d];
            if (pos < 0 || pos >= in_sp[d]) inside = false;
            if (pos >= in_sp[d] + win.pad_end[d]) in_padded = false;
            offset += pos * in_strides[d];
            index += pos * index_strides[d];
          }
          if (in_padded) ++padded_count;
          if (!inside) continue;
          const double v = static_cast<double>(src[offset]);
          if (kind == PoolKind::Max) {
            if (v > acc || best < 0) {
              acc = v;
              best = offset;
              best_index = index;
            }
          } else {
            acc += v;
          }
          ++count;
        }
        if (kind == PoolKind::Average) acc /= static_cast<double>(count_pad ? padded_count : std::max<int64_t>(count, 1));
        po[plane * out_size + op] = static_cast<T>(acc);
        if (want_indices) indices.mutable_data<int64_t>()[plane * out_size + op] = plane * in_size + best_index;
      }
    }
  });
  c.output(0) = narrow_from_float(out, c.input(0).dtype());
  if (want_indices) c.output(1) = std::move(indices);
}

void global_pool(OpContext& c, PoolKind kind) {
  Tensor x = widen_to_float(c.input(0));
  if (x.rank() < 3) c.fail("input must have rank >= 3");
  std::vector<int64_t> out_shape = {x.shape()[0], x.shape()[1]};
  out_shape.resize(static_cast<size_t>(x.rank()), 1);
  Tensor out(x.dtype(), out_shape);
  const int64_t planes = x.shape()[0] * x.shape()[1];
  const int64_t size = planes ? x.numel() / planes : 0;
  visit_float(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (int64_t p = 0; p < planes; ++p) {
      const T* s = x.data<T>() + p * size;
      double acc = kind == PoolKind::Max ? -std::numeric_limits<double>::infinity() : 0.0;
      for (int64_t i = 0; i < size; ++i) acc = kind == PoolKind::Max ? std::max(acc, double(s[i])) : acc + s[i];
      out.mutable_data<T>()[p] = static_cast<T>(kind == PoolKind::Max ? acc : acc / static_cast<double>(size));
    }
  });
  c.output(0) = narrow_from_float(out, c.input(0).dtype());
}

void max_pool_op(OpContext& c) { pool(c, PoolKind::Max); }
void average_pool_op(OpContext& c) { pool(c, PoolKind::Average); }
void global_average_pool_op(OpContext& c) { global_pool(c, PoolKind::Average); }
void global_max_pool_op(OpContext& c) { global_pool(c, PoolKind::Max); }

}  // namespace

void register_pool(KernelRegistry& r) {
  r.add("", "MaxPool", max_pool_op);
  r.add("", "AveragePool", average_pool_op);
  r.add("", "GlobalAveragePool", global_average_pool_op);
  r.add("", "GlobalMaxPool", global_max_pool_op);
}

}  // namespace slmopt::runtime
