#include "onnx/qdq_export.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/quant_tensor.hpp"
#include "onnx/opset_upgrade.hpp"
#include "quant/group_geometry.hpp"
#include "quant/quantize_weight.hpp"

namespace slmopt::onnx_format {
namespace {

struct Exported {
  Tensor codes, scale;
  std::vector<Attribute> attributes;
};

Exported export_tensor(const std::string& name, const QuantTensor& q, int opset) {
  const quant::Scheme& scheme = quant::scheme_or_throw(q.scheme);
  const std::vector<float> scales = scheme.linear_scales ? scheme.linear_scales(q) : std::vector<float>{};
  if (scales.empty())
    throw_usage("'" + name + "' (" + q.scheme + ", " +
                (q.params.symmetric ? "codes that are not integers times a scale" : "with minimums") +
                ") has no exact DequantizeLinear form; use a symmetric int, ternary or binary scheme, or write .slm");
  const quant::Geometry g = quant::geometry(q.params, q.rows, q.cols);
  const int rank = static_cast<int>(q.shape.size());
  // Where rows and cols live in the logical tensor.
  const int out_axis = q.transposed ? 1 : 0, in_axis = q.transposed ? 0 : 1;
  int64_t per_in = 1;  // elements of a row per step of the input axis (Conv: kernel size)
  for (int d = 2; d < rank; ++d) per_in *= q.shape[static_cast<size_t>(d)];
  Exported e;
  e.codes = Tensor(DType::I8, q.shape);
  std::vector<float> values(static_cast<size_t>(q.rows * q.cols));
  quant::dequantize_rows(q, 0, q.rows, values.data());
  bool fits_int4 = true;
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c) {
      const float s = scales[static_cast<size_t>(quant::group_of(g, r, c))];
      const float v = values[static_cast<size_t>(r * q.cols + c)];
      const float code = s == 0 ? 0.0f : std::nearbyint(v / s);
      if (!(code >= -128 && code <= 127) || code * s != v)
        throw_usage("'" + name + "': a value is not an int8 code times its scale; write .slm");
      fits_int4 = fits_int4 && code >= -8 && code <= 7;
      const int64_t at = q.transposed ? c * q.rows + r : r * q.cols + c;
      e.codes.mutable_data<int8_t>()[at] = static_cast<int8_t>(code);
    }
  // Codes of 4 bits or fewer travel as int4 (opset 21): half the bytes of int8.
  if (opset >= 21 && q.params.bits <= 4 && fits_int4) {
    Tensor nibbles(DType::I4, q.shape);
    std::copy_n(e.codes.data<int8_t>(), e.codes.numel(), nibbles.mutable_data<int8_t>());
    e.codes = std::move(nibbles);
  }
  if (g.per_tensor || g.groups == 0) {
    e.scale = Tensor::from_values<float>(DType::F32, {}, {g.groups ? scales[0] : 1.0f});
    return e;
  }
  if (opset < 13) throw_usage("'" + name + "': per-channel DequantizeLinear needs opset 13, the model has " + std::to_string(opset));
  if (g.gpr == 1) {  // one scale per output channel
    e.scale = Tensor::from_values<float>(DType::F32, {q.rows}, scales);
    e.attributes = {Attribute::integer("axis", out_axis)};
    return e;
  }
  if (opset < 21)
    throw_usage("'" + name + "': groups of " + std::to_string(g.glen) +
                " need blocked DequantizeLinear (opset 21), the model has opset " + std::to_string(opset) +
                "; use per-channel scales (e.g. int8-ch) or write .slm");
  if (g.glen % per_in != 0)
    throw_usage("'" + name + "': groups of " + std::to_string(g.glen) + " split a kernel of " + std::to_string(per_in) +
                " weights; no blocked DequantizeLinear matches");
  // Blocks along the input axis; Conv scales repeat over the kernel positions.
  const int64_t block = g.glen / per_in;
  std::vector<int64_t> shape = q.shape;
  shape[static_cast<size_t>(in_axis)] = g.gpr;
  e.scale = Tensor(DType::F32, shape);
  float* dst = e.scale.mutable_data<float>();
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t b = 0; b < g.gpr; ++b)
      for (int64_t k = 0; k < per_in; ++k) {
        const float s = scales[static_cast<size_t>(r * g.gpr + b)];
        if (q.transposed) dst[b * q.rows + r] = s;
        else dst[(r * g.gpr + b) * per_in + k] = s;
      }
  e.attributes = {Attribute::integer("axis", in_axis), Attribute::integer("block_size", block)};
  return e;
}

}  // namespace

Model to_qdq(const Model& model) {
  // DequantizeLinear per tensor needs opset 10, per channel 13: an older
  // model is raised to 13 first (ONNX Runtime refuses a newer node).
  const bool any_codes = std::any_of(model.graph.initializers.begin(), model.graph.initializers.end(), [](const NamedTensor& t) {
    return t.tensor.quant() && t.tensor.quant()->scheme != "float";
  });
  Model out = any_codes ? with_opset_at_least(model, 13) : model;
  Graph& g = out.graph;
  const int opset = onnx_opset(out);
  std::vector<Node> dq_nodes;
  std::vector<NamedTensor> added;
  for (auto& init : g.initializers) {
    const QuantTensor* q = init.tensor.quant();
    if (!q) continue;
    if (q->scheme == "float") {  // a sparse float weight (pack): ONNX gets it dense
      init.tensor = quant::dequantize(init.tensor);
      continue;
    }
    Exported e = export_tensor(init.name, *q, opset);
    const std::string codes = init.name + "_quantized", scale = init.name + "_scale";
    dq_nodes.push_back(Node{init.name + "_dequantize", "DequantizeLinear", "", {codes, scale}, {init.name}, e.attributes, {}});
    added.push_back({scale, e.scale, {}});
    // 4-bit element types need IR version 10.
    if (e.codes.dtype() == DType::I4) out.ir_version = std::max<int64_t>(out.ir_version, 10);
    init.tensor = e.codes;
    init.name = codes;
  }
  g.initializers.insert(g.initializers.end(), added.begin(), added.end());
  g.nodes.insert(g.nodes.begin(), dq_nodes.begin(), dq_nodes.end());
  return out;
}

}  // namespace slmopt::onnx_format
