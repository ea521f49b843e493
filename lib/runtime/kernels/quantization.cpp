// ONNX quantization ops: QuantizeLinear / DequantizeLinear (per tensor, per
// axis and blocked), DynamicQuantizeLinear, MatMulInteger and ConvInteger
// (QLinearMatMul and QLinearConv: qlinear.cpp). Integer math is done exactly in double
// (products of 8-bit values summed over any realistic K stay far below 2^53).
#include <cmath>
#include <limits>

#include "runtime/kernels/kernel_util.hpp"

namespace slmopt::runtime {
namespace {

// Index into a scale / zero-point tensor for element i of x (per tensor, per
// axis, or blocked along `axis`).
struct ParamIndexer {
  int64_t mode = 0;  // 0 per tensor, 1 per axis, 2 blocked
  int64_t axis = 0, block = 0;
  std::vector<int64_t> x_shape, p_strides;
  std::vector<int64_t> x_strides;
  int64_t operator()(int64_t i) const {
    if (mode == 0) return 0;
    if (mode == 1) return (i / x_strides[static_cast<size_t>(axis)]) % x_shape[static_cast<size_t>(axis)];
    int64_t off = 0;
    for (size_t d = 0; d < x_shape.size(); ++d) {
      int64_t k = (i / x_strides[d]) % x_shape[d];
      if (static_cast<int64_t>(d) == axis) k /= block;
      off += k * p_strides[d];
    }
    return off;
  }
};

ParamIndexer indexer(OpContext& c, const Tensor& x, const Tensor& scale) {
  ParamIndexer ix;
  ix.x_shape = x.shape();
  ix.x_strides = strides_of(x.shape());
  if (scale.numel() == 1 && scale.rank() <= 1 && c.attr_int("block_size", 0) == 0) return ix;
  ix.axis = normalize_axis(c, c.attr_int("axis", 1), x.rank());
  ix.block = c.attr_int("block_size", 0);
  if (ix.block > 0 || scale.rank() > 1) {
    if (scale.rank() != x.rank() || ix.block <= 0) c.fail("blocked scales need block_size and the input's rank");
    ix.mode = 2;
    ix.p_strides = strides_of(scale.shape());
    return ix;
  }
  if (scale.numel() != x.shape()[static_cast<size_t>(ix.axis)]) c.fail("per-axis scale length does not match the axis");
  ix.mode = 1;
  return ix;
}

std::vector<double> doubles(const Tensor& t) { return doubles_of(t); }

// Rounds half to even, then clamps to the range of t. Callers round x / scale
// before adding the zero point, as the spec does: ties then break on x / scale.
double saturate_round(double v, DType t) {
  v = std::nearbyint(v);
  double lo = 0, hi = 0;
  switch (t) {
    case DType::U4: lo = 0, hi = 15; break;
    case DType::I4: lo = -8, hi = 7; break;
    case DType::U8: lo = 0, hi = 255; break;
    case DType::I8: lo = -128, hi = 127; break;
    case DType::U16: lo = 0, hi = 65535; break;
    case DType::I16: lo = -32768, hi = 32767; break;
    case DType::I32: lo = -2147483648.0, hi = 2147483647.0; break;
    default: throw_bad_input(std::string("cannot quantize to ") + dtype_name(t));
  }
  return std::min(std::max(v, lo), hi);
}

// values / scale + zero point, saturated to the zero point's type.
Tensor quantize(OpContext& c, const Tensor& x_shape_src, const std::vector<double>& x, const Tensor& scale,
                const Tensor* zp, DType out_type) {
  ParamIndexer ix = indexer(c, x_shape_src, scale);
  auto s = doubles(scale);
  std::vector<double> z = zp ? doubles(*zp) : std::vector<double>(s.size(), 0.0);
  std::vector<double> q(x.size());
  // A float32 input is divided in float32, as the spec's reference does.
  const bool single = x_shape_src.dtype() != DType::F64;
  for (size_t i = 0; i < x.size(); ++i) {
    const auto k = static_cast<size_t>(ix(static_cast<int64_t>(i)));
    const double ratio = single ? static_cast<double>(static_cast<float>(x[i]) / static_cast<float>(s[k])) : x[i] / s[k];
    q[i] = saturate_round(std::nearbyint(ratio) + z[k], out_type);
  }
  Tensor d = Tensor::from_values<double>(DType::F64, x_shape_src.shape(), q);
  return cast_tensor(d, out_type);
}

std::vector<double> dequantize(OpContext& c, const Tensor& x, const Tensor& scale, const Tensor* zp) {
  ParamIndexer ix = indexer(c, x, scale);
  auto v = doubles(x), s = doubles(scale);
  std::vector<double> z = zp ? doubles(*zp) : std::vector<double>(s.size(), 0.0);
  for (size_t i = 0; i < v.size(); ++i) {
    const auto k = static_cast<size_t>(ix(static_cast<int64_t>(i)));
    v[i] = (v[i] - z[k]) * s[k];
  }
  return v;
}

void quantize_linear_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const DType out = c.has_input(2) ? c.input(2).dtype() : DType::U8;
  c.output(0) = quantize(c, x, doubles(x), c.input(1), c.has_input(2) ? &c.input(2) : nullptr, out);
}

void dequantize_linear_op(OpContext& c) {
  const Tensor& x = c.input(0);
  auto v = dequantize(c, x, c.input(1), c.has_input(2) ? &c.input(2) : nullptr);
  c.output(0) = cast_tensor(Tensor::from_values<double>(DType::F64, x.shape(), v), c.input(1).dtype());
}

void dynamic_quantize_linear_op(OpContext& c) {
  const Tensor& x = c.input(0);
  auto v = doubles(cast_tensor(x, DType::F32));
  double lo = 0, hi = 0;
  for (double e : v) lo = std::min(lo, e), hi = std::max(hi, e);
  const float scale = static_cast<float>((hi - lo) / 255.0);
  const double zp = scale == 0 ? 0 : saturate_round(0 - lo / static_cast<double>(scale), DType::U8);
  std::vector<double> q(v.size());
  // Divide in float32, as the spec's reference does, so ties round the same way.
  for (size_t i = 0; i < v.size(); ++i)
    q[i] = scale == 0 ? zp : saturate_round(std::nearbyint(static_cast<float>(v[i]) / scale) + zp, DType::U8);
  c.output(0) = cast_tensor(Tensor::from_values<double>(DType::F64, x.shape(), q), DType::U8);
  c.output(1) = Tensor::from_values<float>(DType::F32, {}, {scale});
  c.output(2) = Tensor::from_values<uint8_t>(DType::U8, {}, {static_cast<uint8_t>(zp)});
}

// Runs another registered kernel (MatMul, Conv) on float64 operands with this node's attributes.
Tensor run_float_kernel(OpContext& c, const char* op, std::vector<Tensor> operands) {
  OpContext inner{c.node, c.opset, {}, {}, c.session, c.scope};
  for (const auto& t : operands) inner.inputs.push_back(&t);
  inner.outputs.resize(1);
  KernelRegistry::instance().find("", op)(inner);
  return std::move(inner.outputs[0]);
}

Tensor minus_zero_point(OpContext& c, const Tensor& x, const Tensor* zp, int64_t axis) {
  auto v = doubles(x);
  if (zp) {
    auto z = doubles(*zp);
    if (z.size() == 1) {
      for (auto& e : v) e -= z[0];
    } else {
      const auto strides = strides_of(x.shape());
      const auto a = static_cast<size_t>(normalize_axis(c, axis, x.rank()));
      if (static_cast<int64_t>(z.size()) != x.shape()[a]) c.fail("zero point length does not match");
      for (size_t i = 0; i < v.size(); ++i) v[i] -= z[static_cast<size_t>((static_cast<int64_t>(i) / strides[a]) % x.shape()[a])];
    }
  }
  return Tensor::from_values<double>(DType::F64, x.shape(), v);
}

void matmul_integer_op(OpContext& c) {
  const Tensor& a = c.input(0);
  const Tensor& b = c.input(1);
  Tensor ad = minus_zero_point(c, a, c.has_input(2) ? &c.input(2) : nullptr, a.rank() - 2);
  Tensor bd = minus_zero_point(c, b, c.has_input(3) ? &c.input(3) : nullptr, b.rank() - 1);
  c.output(0) = cast_tensor(run_float_kernel(c, "MatMul", {ad, bd}), DType::I32);
}

void conv_integer_op(OpContext& c) {
  Tensor xd = minus_zero_point(c, c.input(0), c.has_input(2) ? &c.input(2) : nullptr, 1);
  Tensor wd = minus_zero_point(c, c.input(1), c.has_input(3) ? &c.input(3) : nullptr, 0);
  c.output(0) = cast_tensor(run_float_kernel(c, "Conv", {xd, wd}), DType::I32);
}

}  // namespace

void register_quantization(KernelRegistry& r) {
  r.add("", "QuantizeLinear", quantize_linear_op);
  r.add("", "DequantizeLinear", dequantize_linear_op);
  r.add("", "DynamicQuantizeLinear", dynamic_quantize_linear_op);
  r.add("", "MatMulInteger", matmul_integer_op);
  r.add("", "ConvInteger", conv_integer_op);
}

}  // namespace slmopt::runtime
