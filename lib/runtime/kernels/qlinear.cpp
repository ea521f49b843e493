// QLinearConv and QLinearMatMul as an integer device runs them: 8-bit
// operands less their zero points, multiplied and summed exactly in integers
// (integer_gemm), the int32 bias added, then each output channel requantized
// as the session asks (runtime/requantization.hpp: ONNX's exact definition,
// or TFLite's fixed-point multipliers).
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "runtime/kernels/im2col.hpp"
#include "runtime/kernels/integer_gemm.hpp"
#include "runtime/kernels/kernel_util.hpp"
#include "runtime/kernels/window.hpp"
#include "runtime/requantization.hpp"
#include "runtime/session.hpp"

namespace slmopt::runtime {
namespace {

bool is_8bit(DType t) { return t == DType::U8 || t == DType::I8; }

// `t` less its zero point: one for the tensor, or one per slice along `axis`
// (axis == rank: one for the tensor only).
std::vector<int16_t> centered(const OpContext& c, const Tensor& t, const Tensor* zero, int64_t axis, const char* what) {
  if (!is_8bit(t.dtype())) c.fail(std::string(what) + " must be uint8 or int8, got " + dtype_name(t.dtype()));
  if (zero && zero->dtype() != t.dtype()) c.fail(std::string(what) + "'s zero point has another type");
  std::vector<double> z = zero ? doubles_of(*zero) : std::vector<double>{0.0};
  const int64_t slices = t.rank() > axis ? t.shape()[static_cast<size_t>(axis)] : 1;
  if (z.size() != 1 && static_cast<int64_t>(z.size()) != slices)
    c.fail(std::string(what) + "'s zero point has " + std::to_string(z.size()) + " values for " + std::to_string(slices) +
           " slices");
  const int64_t inner = z.size() == 1 ? t.numel() : strides_of(t.shape())[static_cast<size_t>(axis)];
  std::vector<double> v = doubles_of(t);
  std::vector<int16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const size_t slice = z.size() == 1 ? 0 : static_cast<size_t>((static_cast<int64_t>(i) / inner) % slices);
    out[i] = static_cast<int16_t>(v[i] - z[slice]);
  }
  return out;
}

// One scale, or one per output channel.
std::vector<double> scales(const OpContext& c, const Tensor& s, int64_t channels, const char* what) {
  std::vector<double> v = doubles_of(s);
  if (v.size() != 1 && static_cast<int64_t>(v.size()) != channels)
    c.fail(std::string(what) + " has " + std::to_string(v.size()) + " values for " + std::to_string(channels) +
           " output channels");
  for (double e : v)
    if (!(e > 0) || !std::isfinite(e)) c.fail(std::string(what) + " must be positive and finite");
  return v;
}

// Accumulator of output channel ch -> 8-bit output.
class Requantizer {
 public:
  Requantizer(const OpContext& c, double input_scale, const std::vector<double>& weight_scales, const Tensor& y_scale,
              const Tensor& y_zero)
      : mode_(c.session ? c.session->requantization() : Requantization::Exact), out_(y_zero.dtype()) {
    if (!is_8bit(out_)) c.fail("the output zero point must be uint8 or int8");
    const std::vector<double> ys = scales(c, y_scale, 1, "y_scale");
    if (y_zero.numel() != 1) c.fail("y_zero_point must be one value");
    zero_ = static_cast<int64_t>(doubles_of(y_zero)[0]);
    lo_ = out_ == DType::U8 ? 0 : -128;
    hi_ = out_ == DType::U8 ? 255 : 127;
    for (double ws : weight_scales) {
      // In TFLite's order: the float scales widened, multiplied, then divided.
      in_times_weight_.push_back(input_scale * ws);
      if (mode_ == Requantization::FixedPoint) fixed_.push_back(fixed_point_multiplier(input_scale * ws / ys[0]));
    }
    out_scale_ = ys[0];
  }

  int64_t operator()(const OpContext& c, int64_t acc, size_t ch) const {
    const size_t k = in_times_weight_.size() == 1 ? 0 : ch;
    int64_t scaled = 0;
    if (mode_ == Requantization::Exact) {
      scaled = static_cast<int64_t>(std::nearbyint(static_cast<double>(acc) * in_times_weight_[k] / out_scale_));
    } else {
      if (acc < std::numeric_limits<int32_t>::min() || acc > std::numeric_limits<int32_t>::max())
        c.fail("an accumulator exceeds int32, which fixed-point requantization needs");
      scaled = multiply_fixed_point(static_cast<int32_t>(acc), fixed_[k]);
    }
    return std::clamp(scaled + zero_, lo_, hi_);
  }

  // Requantizes accumulators into an 8-bit tensor; channel_of(i) names element i's channel.
  template <class ChannelOf>
  Tensor apply(const OpContext& c, const std::vector<int64_t>& shape, const std::vector<int64_t>& acc,
               ChannelOf channel_of) const {
    Tensor y(out_, shape);
    for (size_t i = 0; i < acc.size(); ++i) {
      const int64_t v = (*this)(c, acc[i], channel_of(static_cast<int64_t>(i)));
      if (out_ == DType::U8) y.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(v);
      else y.mutable_data<int8_t>()[i] = static_cast<int8_t>(v);
    }
    return y;
  }

 private:
  Requantization mode_;
  DType out_;
  int64_t zero_ = 0, lo_ = 0, hi_ = 0;
  double out_scale_ = 1;
  std::vector<double> in_times_weight_;
  std::vector<FixedPointMultiplier> fixed_;
};

double single_scale(const OpContext& c, const Tensor& s, const char* what) {
  if (s.numel() != 1) c.fail(std::string(what) + " must be one value (per-tensor)");
  return scales(c, s, 1, what)[0];
}

// Inputs: a, a_scale, a_zero, b, b_scale, b_zero, y_scale, y_zero. B's scale
// and zero point may be per column; batch dims broadcast as in MatMul.
void qlinear_matmul_op(OpContext& c) {
  const Tensor& a = c.input(0);
  const Tensor& b = c.input(3);
  if (a.rank() < 1 || b.rank() < 1) c.fail("A and B must have rank >= 1");
  std::vector<int64_t> as = a.shape(), bs = b.shape();
  if (a.rank() == 1) as.insert(as.begin(), 1);
  if (b.rank() == 1) bs.push_back(1);
  const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
  if (bs[bs.size() - 2] != K) c.fail("A " + shape_to_string(a.shape()) + " and B " + shape_to_string(b.shape()) + " do not multiply");
  const std::vector<int16_t> ac = centered(c, a, &c.input(2), a.rank(), "A");
  const std::vector<int16_t> bc = centered(c, b, &c.input(5), b.rank() > 1 ? b.rank() - 1 : b.rank(), "B");
  const std::vector<int64_t> a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  const std::vector<int64_t> batch = broadcast_shape(c, a_batch, b_batch);
  std::vector<int64_t> out_shape = batch;
  if (a.rank() > 1) out_shape.push_back(M);
  if (b.rank() > 1) out_shape.push_back(N);
  int64_t batches = 1;
  for (int64_t d : batch) batches *= d;
  std::vector<int64_t> acc(static_cast<size_t>(batches * M * N));
  for_each_broadcast2(batch, broadcast_strides(a_batch, batch), broadcast_strides(b_batch, batch),
                      [&](int64_t i, int64_t oa, int64_t ob) {
                        integer_gemm(M, N, K, ac.data() + oa * M * K, bc.data() + ob * K * N, acc.data() + i * M * N);
                      });
  const Requantizer requantize(c, single_scale(c, c.input(1), "a_scale"), scales(c, c.input(4), N, "b_scale"),
                               c.input(6), c.input(7));
  c.output(0) = requantize.apply(c, out_shape, acc, [N](int64_t i) { return static_cast<size_t>(i % N); });
}

// Inputs: x, x_scale, x_zero, w, w_scale, w_zero, y_scale, y_zero, optional
// int32 bias (scale x_scale * w_scale). W's scale and zero point may be per
// output channel. im2col of the centred input, so padding reads a real zero.
void qlinear_conv_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const Tensor& w = c.input(3);
  if (x.rank() < 3 || w.rank() != x.rank()) c.fail("X and W must have the same rank >= 3");
  const int64_t groups = c.attr_int("group", 1);
  const int64_t batch = x.shape()[0], channels = x.shape()[1], out_channels = w.shape()[0];
  if (groups <= 0 || channels % groups != 0 || out_channels % groups != 0 || w.shape()[1] * groups != channels)
    c.fail("channels " + std::to_string(channels) + " do not match W " + shape_to_string(w.shape()) + " with group " +
           std::to_string(groups));
  std::vector<int64_t> kernel = c.attr_ints("kernel_shape", std::vector<int64_t>(w.shape().begin() + 2, w.shape().end()));
  std::vector<int64_t> in_sp(x.shape().begin() + 2, x.shape().end());
  const Window win = compute_window(c, in_sp, kernel);
  std::vector<int64_t> out_shape = {batch, out_channels};
  out_shape.insert(out_shape.end(), win.out.begin(), win.out.end());
  std::vector<int64_t> bias;
  if (c.has_input(8)) {
    if (c.input(8).dtype() != DType::I32 || c.input(8).numel() != out_channels)
      c.fail("the bias must be int32 with one value per output channel");
    for (double v : doubles_of(c.input(8))) bias.push_back(static_cast<int64_t>(v));
  }
  const std::vector<int16_t> xc = centered(c, x, &c.input(2), x.rank(), "X");
  const std::vector<int16_t> wc = centered(c, w, &c.input(5), 0, "W");
  const Window win2 = lifted_to_2d(win);
  const size_t nd = in_sp.size();
  int64_t in_size = 1, out_size = 1, k_size = 1;
  for (size_t d = 0; d < nd; ++d) in_size *= in_sp[d], out_size *= win.out[d], k_size *= win.kernel[d];
  const std::vector<int64_t> in_sp2 = nd == 1 ? std::vector<int64_t>{1, in_sp[0]} : in_sp;
  const int64_t cg = channels / groups, mg = out_channels / groups, rows = cg * k_size;
  std::vector<int16_t> col(static_cast<size_t>(rows * out_size));
  c.scratch_bytes += col.size() * sizeof(int16_t);
  std::vector<int64_t> acc(static_cast<size_t>(batch * out_channels * out_size));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t g = 0; g < groups; ++g) {
      const int16_t* group_input = xc.data() + (b * channels + g * cg) * in_size;
      for (int64_t ci = 0; ci < cg; ++ci)
        for (int64_t kp = 0; kp < k_size; ++kp) {
          int16_t* row = col.data() + (ci * k_size + kp) * out_size;
          if (nd <= 2) im2col_row_2d(group_input + ci * in_size, in_sp2, win2, kp, row);
          else im2col_row_reference(group_input + ci * in_size, in_sp, win, kp, row);
        }
      int64_t* dst = acc.data() + (b * out_channels + g * mg) * out_size;
      integer_gemm(mg, out_size, rows, wc.data() + g * mg * rows, col.data(), dst);
      for (int64_t m = 0; m < mg && !bias.empty(); ++m)
        for (int64_t op = 0; op < out_size; ++op) dst[m * out_size + op] += bias[static_cast<size_t>(g * mg + m)];
    }
  const Requantizer requantize(c, single_scale(c, c.input(1), "x_scale"), scales(c, c.input(4), out_channels, "w_scale"),
                               c.input(6), c.input(7));
  c.output(0) = requantize.apply(c, out_shape, acc, [&](int64_t i) { return static_cast<size_t>((i / out_size) % out_channels); });
}

}  // namespace

void register_qlinear(KernelRegistry& r) {
  r.add("", "QLinearMatMul", qlinear_matmul_op);
  r.add("", "QLinearConv", qlinear_conv_op);
}

}  // namespace slmopt::runtime
