// Conv (any number of spatial dims, groups, dilations, padding) by im2col and a
// matrix product; ConvTranspose (1-D and 2-D float) by a matrix product and
// col2im, other cases by direct scatter; com.microsoft FusedConv.
#include <algorithm>
#include <cstring>
#include <memory>

#include "runtime/kernel_registry.hpp"
#include "runtime/kernels/kernel_util.hpp"
#include "runtime/kernels/matmul.hpp"
#include "runtime/kernels/window.hpp"
#include "runtime/kernels/im2col.hpp"
#include "runtime/session.hpp"

namespace slmopt::runtime {
namespace {

int64_t product_of(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t d : v) p *= d;
  return p;
}

}  // namespace

template <class T>
void im2col_row_reference(const T* plane, const std::vector<int64_t>& in_sp, const Window& win, int64_t kp, T* row) {
  const size_t nd = in_sp.size();
  std::vector<int64_t> kidx(nd), oidx(nd);
  int64_t rem = kp;
  for (size_t d = nd; d-- > 0;) {
    kidx[d] = rem % win.kernel[d];
    rem /= win.kernel[d];
  }
  const int64_t out_size = product_of(win.out);
  for (int64_t op = 0; op < out_size; ++op) {
    int64_t r2 = op, offset = 0, stride = 1;
    bool inside = true;
    for (size_t d = nd; d-- > 0;) {
      oidx[d] = r2 % win.out[d];
      r2 /= win.out[d];
    }
    for (size_t d = nd; d-- > 0;) {
      const int64_t pos = oidx[d] * win.strides[d] - win.pad_begin[d] + kidx[d] * win.dilations[d];
      if (pos < 0 || pos >= in_sp[d]) {
        inside = false;
        break;
      }
      offset += pos * stride;
      stride *= in_sp[d];
    }
    row[op] = inside ? plane[offset] : T(0);
  }
}

namespace {

// im2col_row_2d when the output is as wide as the input and both strides are
// 1 ("same" padding along the width): consecutive output rows read
// consecutive input rows, so the row is one shifted copy of the plane, with
// the columns that fall in the padding zeroed after. A copy per output row
// cost a library call per 32 floats or fewer.
template <class T>
void im2col_rows_follow(const T* plane, int64_t H, int64_t W, int64_t OH, int64_t h0, int64_t w0, T* row) {
  const int64_t oh_lo = std::clamp<int64_t>(-h0, 0, OH), oh_hi = std::clamp<int64_t>(H - h0, oh_lo, OH);
  const int64_t t0 = oh_lo * W, t1 = oh_hi * W, shift = h0 * W + w0;
  // Output element t of an inside row reads plane[t + shift]; only padding
  // columns of the first and last input row fall outside the plane.
  const int64_t c0 = std::clamp<int64_t>(-shift, t0, t1), c1 = std::clamp<int64_t>(H * W - shift, c0, t1);
  std::fill(row, row + c0, T(0));
  std::copy(plane + c0 + shift, plane + c1 + shift, row + c0);
  std::fill(row + c1, row + OH * W, T(0));
  const int64_t first = std::clamp<int64_t>(-w0, 0, W), last = std::clamp<int64_t>(W - w0, first, W);
  // Column by column: a strided store, not a library call per row.
  auto zero_column = [&](int64_t ow) {
    for (int64_t oh = oh_lo; oh < oh_hi; ++oh) row[oh * W + ow] = T(0);
  };
  for (int64_t ow = 0; ow < first; ++ow) zero_column(ow);
  for (int64_t ow = last; ow < W; ++ow) zero_column(ow);
}

}  // namespace

template <class T>
void im2col_row_2d(const T* plane, const std::vector<int64_t>& in_sp, const Window& win, int64_t kp, T* row) {
  const int64_t H = in_sp[0], W = in_sp[1], OH = win.out[0], OW = win.out[1];
  const int64_t kh = kp / win.kernel[1], kw = kp % win.kernel[1];
  const int64_t sh = win.strides[0], sw = win.strides[1];
  const int64_t h0 = kh * win.dilations[0] - win.pad_begin[0], w0 = kw * win.dilations[1] - win.pad_begin[1];
  if (sh == 1 && sw == 1 && OW == W) {
    im2col_rows_follow(plane, H, W, OH, h0, w0, row);
    return;
  }
  for (int64_t oh = 0; oh < OH; ++oh) {
    T* dst = row + oh * OW;
    const int64_t ih = oh * sh + h0;
    if (ih < 0 || ih >= H) {
      std::fill(dst, dst + OW, T(0));
      continue;
    }
    const T* src = plane + ih * W;
    if (sw == 1) {
      // Contiguous: zero the padded ends, copy the middle in one go.
      const int64_t first = std::clamp<int64_t>(-w0, 0, OW), last = std::clamp<int64_t>(W - w0, 0, OW);
      std::fill(dst, dst + first, T(0));
      if (last > first) std::copy(src + first + w0, src + last + w0, dst + first);
      std::fill(dst + std::max(first, last), dst + OW, T(0));
    } else {
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t iw = ow * sw + w0;
        dst[ow] = (iw >= 0 && iw < W) ? src[iw] : T(0);
      }
    }
  }
}

template void im2col_row_reference<float>(const float*, const std::vector<int64_t>&, const Window&, int64_t, float*);
template void im2col_row_2d<float>(const float*, const std::vector<int64_t>&, const Window&, int64_t, float*);
template void im2col_row_reference<int16_t>(const int16_t*, const std::vector<int64_t>&, const Window&, int64_t, int16_t*);
template void im2col_row_2d<int16_t>(const int16_t*, const std::vector<int64_t>&, const Window&, int64_t, int16_t*);

namespace {

// Whether the im2col matrix of a group is the input itself under some
// strides, so no copy is needed: a pointwise convolution (kernel of ones,
// stride 1, no padding) reads the channels as they are; a 1-D convolution of
// one input channel without padding reads overlapping windows (an STFT's
// frames, as in a mel spectrogram).
bool all_equal(const std::vector<int64_t>& v, int64_t value) {
  return std::all_of(v.begin(), v.end(), [&](int64_t x) { return x == value; });
}
bool is_pointwise(const Window& win) { return all_equal(win.kernel, 1) && all_equal(win.strides, 1); }
bool is_unpadded(const Window& win) { return all_equal(win.pad_begin, 0) && all_equal(win.pad_end, 0); }

bool input_is_columns(int64_t cg, size_t nd, const Window& win) {
  return is_unpadded(win) && (is_pointwise(win) || (nd == 1 && cg == 1));
}

// That matrix: rows (channel, kernel position), columns output positions.
MatrixView input_columns(const float* group_input, int64_t in_size, const Window& win) {
  if (is_pointwise(win)) return row_major(group_input, in_size);
  return {group_input, win.dilations[0], win.strides[0]};  // 1-D, one channel (a strided 1-wide kernel too)
}

// Whether, in 2-D (a 1-D convolution as height 1), the im2col rows of each
// kernel position are the input channels under one column stride: unpadded,
// and output row oh + 1 starts where the input rows under it do (a k x 1
// kernel of stride 1, or a single output row, as every 1-D convolution has).
// Then the product is a sum over kernel positions of W[:, :, kp] times a view
// of the input, and no im2col copy is made.
bool input_is_columns_per_position(const std::vector<int64_t>& in_sp, const Window& win2) {
  return is_unpadded(win2) && product_of(win2.kernel) > 0 &&
         (win2.out[0] == 1 || win2.strides[0] * in_sp[1] == win2.out[1] * win2.strides[1]);
}

// Rows: the group's channels at kernel position kp; columns: output positions.
MatrixView position_columns(const float* group_input, int64_t in_size, const std::vector<int64_t>& in_sp,
                            const Window& win2, int64_t kp) {
  const int64_t kh = kp / win2.kernel[1], kw = kp % win2.kernel[1];
  return {group_input + kh * win2.dilations[0] * in_sp[1] + kw * win2.dilations[1], in_size, win2.strides[1]};
}

template <class T>
void conv_typed(OpContext& c, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out, const Window& win,
                int64_t groups) {
  const auto& xs = x.shape();
  const auto& ws = w.shape();
  const int64_t batch = xs[0], channels = xs[1], out_channels = ws[0];
  const size_t nd = xs.size() - 2;
  std::vector<int64_t> in_sp(xs.begin() + 2, xs.end());
  const int64_t in_size = product_of(in_sp), out_size = product_of(win.out), k_size = product_of(win.kernel);
  const int64_t cg = channels / groups, mg = out_channels / groups;
  // A 1-D convolution is a 2-D one of height 1, which has the fast im2col.
  const Window win2 = lifted_to_2d(win);
  if (nd == 1) in_sp.insert(in_sp.begin(), 1);
  const int64_t rows = cg * k_size;
  const bool direct = std::is_same_v<T, float> && input_is_columns(cg, nd, win);
  const bool per_position =
      std::is_same_v<T, float> && !direct && nd <= 2 && input_is_columns_per_position(in_sp, win2);
  const bool im2col = !direct && !per_position;
  // Not zero-filled: im2col writes every element.
  const auto col_size = im2col ? static_cast<size_t>(rows * out_size) : size_t{0};
  std::unique_ptr<T[]> col(new T[col_size]);
  c.scratch_bytes += col_size * sizeof(T);
  const T* px = x.data<T>();
  const T* pw = w.data<T>();
  T* po = out.mutable_data<T>();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t g = 0; g < groups; ++g) {
      const T* group_input = px + (b * channels + g * cg) * in_size;
      // im2col: row (ci, kernel position), column output position.
      for (int64_t ci = 0; ci < cg && im2col; ++ci) {
        const T* plane = group_input + ci * in_size;
        for (int64_t kp = 0; kp < k_size; ++kp) {
          T* row = col.get() + (ci * k_size + kp) * out_size;
          if (nd <= 2) im2col_row_2d(plane, in_sp, win2, kp, row);
          else im2col_row_reference(plane, in_sp, win, kp, row);
        }
      }
      T* dst = po + (b * out_channels + g * mg) * out_size;
      const T* wg = pw + g * mg * rows;
      if constexpr (std::is_same_v<T, float>) {
        // The bias goes in first and the product is added to it: one pass over the output less.
        if (bias)
          for (int64_t m = 0; m < mg; ++m) std::fill_n(dst + m * out_size, out_size, bias->data<float>()[g * mg + m]);
        // Constant weights are packed once per session, not on every run.
        auto weights_times = [&](MatrixView weights, int64_t depth, MatrixView columns, bool accumulate) {
          const bool pack = c.session && float_matmul_uses_sgemm(mg, out_size, depth, weights, columns);
          const PackedOperand* packed = pack ? c.session->packed_constant(weights, Operand::A, mg, depth) : nullptr;
          float_matmul(mg, out_size, depth, weights, columns, dst, out_size, accumulate, packed);
        };
        if (per_position) {
          for (int64_t kp = 0; kp < k_size; ++kp)
            weights_times({wg + kp, rows, k_size}, cg, position_columns(group_input, in_size, in_sp, win2, kp),
                          bias != nullptr || kp > 0);
        } else {
          const MatrixView columns = direct ? input_columns(group_input, in_size, win) : row_major(col.get(), out_size);
          weights_times(row_major(wg, rows), rows, columns, bias != nullptr);
        }
      } else {
        if (rows > 0) matmul_fast(wg, col.get(), dst, mg, rows, out_size);
        else std::fill_n(dst, mg * out_size, T(0));
        if (bias) {
          const T* pb = bias->data<T>();
          for (int64_t m = 0; m < mg; ++m)
            for (int64_t op = 0; op < out_size; ++op) dst[m * out_size + op] += pb[g * mg + m];
        }
      }
    }
  }
}

// Input positions i (0 <= i < in) whose output i * stride + base lies in [0, out).
std::pair<int64_t, int64_t> inside_range(int64_t in, int64_t out, int64_t stride, int64_t base) {
  const int64_t lo = base >= 0 ? 0 : (-base + stride - 1) / stride;
  const int64_t hi = out - 1 - base < 0 ? 0 : (out - 1 - base) / stride + 1;
  return {std::min(lo, in), std::clamp(hi, std::min(lo, in), in)};
}

// A depthwise convolution (one input and one output channel per group, as
// MobileNets use it) is a weighted sum of shifted rows per channel: each
// kernel position adds w * input row into the output row, no matrix product
// of one row. 1-D windows arrive lifted to 2-D.
void depthwise_conv2d(const float* x, const float* w, const float* bias, float* out, int64_t planes, int64_t channels,
                      const std::vector<int64_t>& in_sp, const Window& win) {
  const int64_t H = in_sp[0], W = in_sp[1], OH = win.out[0], OW = win.out[1];
  const int64_t KH = win.kernel[0], KW = win.kernel[1], sh = win.strides[0], sw = win.strides[1];
  for (int64_t p = 0; p < planes; ++p) {
    const float* plane = x + p * H * W;
    const int64_t ch = p % channels;  // planes run over batch x channels
    const float* k = w + ch * KH * KW;
    float* dst = out + p * OH * OW;
    std::fill_n(dst, OH * OW, bias ? bias[ch] : 0.0f);
    for (int64_t kh = 0; kh < KH; ++kh)
      for (int64_t kw = 0; kw < KW; ++kw) {
        const float wv = k[kh * KW + kw];
        const int64_t base_h = kh * win.dilations[0] - win.pad_begin[0], base_w = kw * win.dilations[1] - win.pad_begin[1];
        const auto [oh0, oh1] = inside_range(OH, H, sh, base_h);
        const auto [ow0, ow1] = inside_range(OW, W, sw, base_w);
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          const float* src = plane + (oh * sh + base_h) * W;
          float* d = dst + oh * OW;
          if (sw == 1) {
            for (int64_t ow = ow0; ow < ow1; ++ow) d[ow] += wv * src[ow + base_w];
          } else {
            for (int64_t ow = ow0; ow < ow1; ++ow) d[ow] += wv * src[ow * sw + base_w];
          }
        }
      }
  }
}

void conv_op(OpContext& c) {
  Tensor x = widen_to_float(c.input(0)), w = widen_to_float(c.input(1));
  if (x.rank() < 3 || w.rank() != x.rank()) c.fail("X and W must have the same rank >= 3");
  const int64_t groups = c.attr_int("group", 1);
  if (groups <= 0 || x.shape()[1] % groups != 0 || w.shape()[0] % groups != 0 || w.shape()[1] * groups != x.shape()[1])
    c.fail("channels " + std::to_string(x.shape()[1]) + " do not match W " + shape_to_string(w.shape()) + " with group " +
           std::to_string(groups));
  std::vector<int64_t> kernel = c.attr_ints("kernel_shape", std::vector<int64_t>(w.shape().begin() + 2, w.shape().end()));
  std::vector<int64_t> spatial(x.shape().begin() + 2, x.shape().end());
  Window win = compute_window(c, spatial, kernel);
  std::vector<int64_t> out_shape = {x.shape()[0], w.shape()[0]};
  out_shape.insert(out_shape.end(), win.out.begin(), win.out.end());
  Tensor out(x.dtype(), out_shape);
  Tensor bias;
  if (c.has_input(2)) {
    bias = widen_to_float(c.input(2));
    if (bias.numel() != w.shape()[0]) c.fail("bias must have one value per output channel");
  }
  const bool depthwise = groups == x.shape()[1] && w.shape()[0] == groups && w.shape()[1] == 1;
  if (depthwise && x.dtype() == DType::F32 && x.rank() <= 4) {
    std::vector<int64_t> in_sp(x.shape().begin() + 2, x.shape().end());
    if (in_sp.size() == 1) in_sp.insert(in_sp.begin(), 1);
    depthwise_conv2d(x.data<float>(), w.data<float>(), c.has_input(2) ? bias.data<float>() : nullptr,
                     out.mutable_data<float>(), x.shape()[0] * groups, groups, in_sp, lifted_to_2d(win));
  } else {
    visit_float(x.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      conv_typed<T>(c, x, w, c.has_input(2) ? &bias : nullptr, out, win, groups);
    });
  }
  c.output(0) = narrow_from_float(out, c.input(0).dtype());
}

// A ConvTranspose's shape: per group cg input and mg output channels;
// spatial sizes, kernel, strides, dilations and begin pads (2-D after lifting).
struct ConvTransposeGeometry {
  int64_t cg, mg, groups;
  std::vector<int64_t> in, out, kernel, strides, dil, pads;
};

// A 1-D transposed convolution is a 2-D one of height 1.
ConvTransposeGeometry lifted_to_2d(ConvTransposeGeometry g, size_t nd) {
  if (nd == 2) return g;
  g.in.insert(g.in.begin(), 1);
  g.out.insert(g.out.begin(), 1);
  g.kernel.insert(g.kernel.begin(), 1);
  g.strides.insert(g.strides.begin(), 1);
  g.dil.insert(g.dil.begin(), 1);
  g.pads = {0, g.pads[0]};
  return g;
}

// Per group, the columns W_g^T X_g (output channel and kernel position by
// input position) by the packed matrix product, then each column added
// into the output where its kernel position lands (col2im).
void conv_transpose_gemm(OpContext& c, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out,
                         const ConvTransposeGeometry& g) {
  const int64_t batch = x.shape()[0], channels = g.cg * g.groups, out_channels = g.mg * g.groups;
  const int64_t IH = g.in[0], IW = g.in[1], OH = g.out[0], OW = g.out[1], KH = g.kernel[0], KW = g.kernel[1];
  const int64_t in_size = IH * IW, out_size = OH * OW, k_size = KH * KW, rows = g.mg * k_size;
  std::unique_ptr<float[]> cols(new float[static_cast<size_t>(rows * in_size)]);
  c.scratch_bytes += static_cast<uint64_t>(rows * in_size) * sizeof(float);
  const float* px = x.data<float>();
  const float* pw = w.data<float>();
  float* po = out.mutable_data<float>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      // W is [channels, mg, kernel...]: the group's rows read transposed are rows x cg.
      const MatrixView weights{pw + gi * g.cg * rows, 1, rows};
      const MatrixView input = row_major(px + (b * channels + gi * g.cg) * in_size, in_size);
      if (g.cg == 0 || rows == 0 || in_size == 0) {
        std::fill_n(cols.get(), rows * in_size, 0.0f);
      } else {
        const bool pack = c.session && float_matmul_uses_sgemm(rows, in_size, g.cg, weights, input);
        const PackedOperand* packed = pack ? c.session->packed_constant(weights, Operand::A, rows, g.cg) : nullptr;
        float_matmul(rows, in_size, g.cg, weights, input, cols.get(), in_size, false, packed);
      }
      for (int64_t m = 0; m < g.mg; ++m) {
        float* dst = po + (b * out_channels + gi * g.mg + m) * out_size;
        if (bias) std::fill_n(dst, out_size, bias->data<float>()[gi * g.mg + m]);
        for (int64_t kh = 0; kh < KH; ++kh)
          for (int64_t kw = 0; kw < KW; ++kw) {
            const float* col = cols.get() + ((m * KH + kh) * KW + kw) * in_size;
            const int64_t base_h = kh * g.dil[0] - g.pads[0], base_w = kw * g.dil[1] - g.pads[1];
            const auto [h0, h1] = inside_range(IH, OH, g.strides[0], base_h);
            const auto [w0, w1] = inside_range(IW, OW, g.strides[1], base_w);
            for (int64_t ih = h0; ih < h1; ++ih) {
              float* drow = dst + (ih * g.strides[0] + base_h) * OW;
              const float* srow = col + ih * IW;
              const int64_t sw = g.strides[1];
              for (int64_t iw = w0; iw < w1; ++iw) drow[iw * sw + base_w] += srow[iw];
            }
          }
      }
    }
}

void conv_transpose_op(OpContext& c) {
  Tensor x = widen_to_float(c.input(0)), w = widen_to_float(c.input(1));
  if (x.rank() < 3 || w.rank() != x.rank()) c.fail("X and W must have the same rank >= 3");
  const size_t nd = static_cast<size_t>(x.rank() - 2);
  const int64_t groups = c.attr_int("group", 1);
  const int64_t channels = x.shape()[1];
  if (groups <= 0 || w.shape()[0] != channels || channels % groups != 0) c.fail("W does not match the input channels");
  const int64_t cg = channels / groups, mg = w.shape()[1], out_channels = mg * groups;
  std::vector<int64_t> kernel = c.attr_ints("kernel_shape", std::vector<int64_t>(w.shape().begin() + 2, w.shape().end()));
  auto strides = c.attr_ints("strides", std::vector<int64_t>(nd, 1));
  auto dil = c.attr_ints("dilations", std::vector<int64_t>(nd, 1));
  auto out_pad = c.attr_ints("output_padding", std::vector<int64_t>(nd, 0));
  auto pads = c.attr_ints("pads", std::vector<int64_t>(2 * nd, 0));
  auto out_sp_attr = c.attr_ints("output_shape");
  const std::string auto_pad = c.attr_string("auto_pad", "NOTSET");
  if (strides.size() != nd || dil.size() != nd || out_pad.size() != nd || pads.size() != 2 * nd || kernel.size() != nd)
    c.fail("attribute lengths do not match the spatial rank");
  std::vector<int64_t> in_sp(x.shape().begin() + 2, x.shape().end()), out_sp(nd);
  for (size_t d = 0; d < nd; ++d) {
    const int64_t full = strides[d] * (in_sp[d] - 1) + out_pad[d] + (kernel[d] - 1) * dil[d] + 1;
    if (!out_sp_attr.empty()) {
      out_sp[d] = out_sp_attr[out_sp_attr.size() - nd + d];
      // Python's floor division, as ONNX's reference: a negative total (the
      // requested output is larger than the full one) pads only at the end.
      const int64_t total = full - out_sp[d];
      const int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
      pads[d] = auto_pad == "SAME_UPPER" ? half : total - half;
      pads[d + nd] = total - pads[d];
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      out_sp[d] = in_sp[d] * strides[d];
      const int64_t total = std::max<int64_t>(0, full - out_sp[d]);
      pads[d] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      pads[d + nd] = total - pads[d];
    } else {
      out_sp[d] = full - pads[d] - pads[d + nd];
    }
  }
  std::vector<int64_t> out_shape = {x.shape()[0], out_channels};
  out_shape.insert(out_shape.end(), out_sp.begin(), out_sp.end());
  Tensor out(x.dtype(), out_shape);
  Tensor bias = c.has_input(2) ? widen_to_float(c.input(2)) : Tensor();
  if (c.has_input(2) && bias.numel() != out_channels) c.fail("bias must have one value per output channel");
  if (x.dtype() == DType::F32 && nd <= 2) {
    ConvTransposeGeometry geo{cg, mg, groups, in_sp, out_sp, kernel, strides, dil, pads};
    conv_transpose_gemm(c, x, w, c.has_input(2) ? &bias : nullptr, out, lifted_to_2d(geo, nd));
    c.output(0) = std::move(out);
    return;
  }
  // Other types and ranks: each input element scattered through the kernel (the definition).
  visit_float(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    const T* pw = w.data<T>();
    T* po = out.mutable_data<T>();
    const int64_t in_size = product_of(in_sp), out_size = product_of(out_sp), k_size = product_of(kernel);
    std::vector<int64_t> iidx(nd), kidx(nd);
    for (int64_t b = 0; b < x.shape()[0]; ++b)
      for (int64_t ci = 0; ci < channels; ++ci) {
        const int64_t g = ci / cg;
        for (int64_t ip = 0; ip < in_size; ++ip) {
          int64_t r = ip;
          for (size_t d = nd; d-- > 0;) {
            iidx[d] = r % in_sp[d];
            r /= in_sp[d];
          }
          const T v = px[(b * channels + ci) * in_size + ip];
          for (int64_t kp = 0; kp < k_size; ++kp) {
            int64_t rk = kp;
            for (size_t d = nd; d-- > 0;) {
              kidx[d] = rk % kernel[d];
              rk /= kernel[d];
            }
            int64_t offset = 0, stride = 1;
            bool inside = true;
            for (size_t d = nd; d-- > 0;) {
              const int64_t pos = iidx[d] * strides[d] + kidx[d] * dil[d] - pads[d];
              if (pos < 0 || pos >= out_sp[d]) {
                inside = false;
                break;
              }
              offset += pos * stride;
              stride *= out_sp[d];
            }
            if (!inside) continue;
            for (int64_t m = 0; m < mg; ++m)
              po[(b * out_channels + g * mg + m) * out_size + offset] += v * pw[(ci * mg + m) * k_size + kp];
          }
        }
      }
    if (c.has_input(2))
      for (int64_t b = 0; b < x.shape()[0]; ++b)
        for (int64_t m = 0; m < out_channels; ++m)
          for (int64_t op = 0; op < out_size; ++op) po[(b * out_channels + m) * out_size + op] += bias.data<T>()[m];
  });
  c.output(0) = narrow_from_float(out, c.input(0).dtype());
}

Attribute float_attribute(const std::string& name, float value) {
  Attribute a;
  a.name = name;
  a.type = AttrType::Float;
  a.f = value;
  return a;
}

// com.microsoft FusedConv (ONNX Runtime's contrib op, which `simplify
// --fuse-activations` writes): a Conv and then its activation, computed by
// the same kernels as the two nodes apart, so fusing changes no bit.
void fused_conv_op(OpContext& c) {
  if (c.has_input(3)) c.fail("the Z (sum) input is not supported");
  conv_op(c);
  const std::string op = c.attr_string("activation", "");
  const std::vector<float> params = c.attr_floats("activation_params");
  Node act;
  act.op_type = op;
  Tensor lo, hi;
  std::vector<const Tensor*> inputs = {&c.output(0)};
  auto need = [&](size_t count) {
    if (params.size() != count)
      c.fail("activation " + op + " takes " + std::to_string(count) + " activation_params, got " + std::to_string(params.size()));
  };
  if (op == "LeakyRelu") {
    need(1);
    act.attributes.push_back(float_attribute("alpha", params[0]));
  } else if (op == "HardSigmoid") {
    need(2);
    act.attributes = {float_attribute("alpha", params[0]), float_attribute("beta", params[1])};
  } else if (op == "Clip") {
    need(2);
    lo = Tensor::from_values<float>(DType::F32, {}, {params[0]});
    hi = Tensor::from_values<float>(DType::F32, {}, {params[1]});
    inputs = {&c.output(0), &lo, &hi};
  } else if (op != "Relu" && op != "Sigmoid" && op != "Tanh") {
    c.fail("activation '" + op + "' is not one of Relu, LeakyRelu, Sigmoid, Tanh, Clip, HardSigmoid");
  }
  const KernelEntry* kernel = KernelRegistry::instance().entry("", op);
  OpContext ac{act, 13, inputs, {}, c.session, c.scope};
  ac.outputs.resize(1);
  kernel->fn(ac);
  c.output(0) = std::move(ac.outputs[0]);
}

}  // namespace

void register_conv(KernelRegistry& r) {
  r.add("", "Conv", conv_op);
  r.add("", "ConvTranspose", conv_transpose_op);
  r.add("com.microsoft", "FusedConv", fused_conv_op);
}

}  // namespace slmopt::runtime
