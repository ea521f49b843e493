#include "passes/int8_activations.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/error.hpp"
#include "onnx/opset_upgrade.hpp"
#include "passes/layer_weight.hpp"
#include "runtime/constants.hpp"

namespace slmopt::passes {
namespace {

struct Affine {
  float scale;
  int zero;  // uint8
};

// uint8 parameters covering [lo, hi] and zero exactly (zero padding and ReLU
// outputs must stay exact).
Affine affine_for(calib::ValueRange r) {
  const float lo = std::min(r.min, 0.0f), hi = std::max(r.max, 0.0f);
  const float scale = hi > lo ? (hi - lo) / 255.0f : 1.0f;
  const int zero = static_cast<int>(std::clamp(std::nearbyint(-lo / scale), 0.0f, 255.0f));
  return {scale, zero};
}

// int8 codes of w per output channel (rows of `rows` x `per_row`), symmetric,
// and the scale of each channel.
std::vector<int8_t> per_channel_int8(const float* w, int64_t rows, int64_t per_row, std::vector<float>& scales) {
  std::vector<int8_t> codes(static_cast<size_t>(rows * per_row));
  scales.assign(static_cast<size_t>(rows), 1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    float m = 0;
    for (int64_t i = 0; i < per_row; ++i) m = std::max(m, std::fabs(w[r * per_row + i]));
    const float s = m > 0 ? m / 127.0f : 1.0f;
    scales[static_cast<size_t>(r)] = s;
    for (int64_t i = 0; i < per_row; ++i)
      codes[static_cast<size_t>(r * per_row + i)] =
          static_cast<int8_t>(std::clamp(std::nearbyint(w[r * per_row + i] / s), -127.0f, 127.0f));
  }
  return codes;
}

Tensor scalar_f32(float v) { return Tensor::from_values<float>(DType::F32, {}, {v}); }
Tensor scalar_u8(int v) { return Tensor::from_values<uint8_t>(DType::U8, {}, {static_cast<uint8_t>(v)}); }

// New initializers wait here: adding to the graph's list while holding
// pointers into it would move them.
class Builder {
 public:
  std::string add(const std::string& name, Tensor t) {
    added.push_back({name, std::move(t), {}});
    return name;
  }
  std::vector<NamedTensor> added;
};

}  // namespace

Model quantize_activations_int8(const Model& model, const calib::CalibStats& stats, Int8Report& report,
                                calib::ObserverKind default_observer, const RuleSet& rules, bool allow_empty) {
  // QuantizeLinear, QLinearConv and QLinearMatMul need opset 10.
  Model out = onnx_format::with_opset_at_least(model, 10);
  runtime::constants_to_initializers(out);
  Graph& g = out.graph;
  Builder b;
  std::map<std::pair<std::string, calib::ObserverKind>, calib::ValueRange> observed;
  std::set<std::string> converted;  // float weights and biases now read as int8 codes
  calib::ObserverKind observer = default_observer;
  auto range_of = [&](const std::string& value) -> const calib::ValueRange* {
    calib::ValueRange r;
    if (!calib::observed_range(stats, value, observer, r)) return nullptr;
    return &(observed[{value, observer}] = r);
  };
  std::vector<Node> nodes;
  for (const Node& n : g.nodes) {
    const bool conv = n.op_type == "Conv", matmul = n.op_type == "MatMul", gemm = n.op_type == "Gemm";
    if (!(conv || matmul || gemm) || (!n.domain.empty() && n.domain != "ai.onnx") || n.inputs.size() < 2 ||
        n.outputs.size() != 1) {
      nodes.push_back(n);
      continue;
    }
    const NamedTensor* w = g.find_initializer(n.inputs[1]);
    const int rule = rules.first_match(n.inputs[1], n.name, n.op_type);
    std::string rule_label;
    bool keep_float = false;
    observer = default_observer;
    if (rule >= 0) {
      const Rule& r = rules.rules[static_cast<size_t>(rule)];
      rule_label = r.label;
      check_setting_keys(r.settings, {"observer", "keep"}, r.label);
      if (auto it = r.settings.find("observer"); it != r.settings.end()) observer = calib::parse_observer(it->second);
      if (auto it = r.settings.find("keep"); it != r.settings.end()) {
        if (it->second != "f32" && it->second != "float") throw_usage(r.label + ": keep takes f32 here (the layer stays float)");
        keep_float = true;
      }
    }
    const NamedTensor* bias = n.inputs.size() > 2 && !n.inputs[2].empty() ? g.find_initializer(n.inputs[2]) : nullptr;
    const calib::ValueRange* in_range = range_of(n.inputs[0]);
    const calib::ValueRange* out_range = range_of(n.outputs[0]);
    std::string why;
    if (keep_float) why = "kept float by " + rule_label;
    else if (!w || w->tensor.dtype() != DType::F32 || w->tensor.is_quantized()) why = "weight is not a float initializer";
    else if (!in_range || !out_range) why = "no calibration range for its input or output";
    else if (n.inputs.size() > 2 && !n.inputs[2].empty() && (!bias || bias->tensor.dtype() != DType::F32)) why = "bias is not a float initializer";
    else if (matmul && w->tensor.rank() != 2) why = "weight is not 2-D";
    if (gemm && why.empty()) {
      const Attribute* ta = n.find_attribute("transA");
      const Attribute* alpha = n.find_attribute("alpha");
      const Attribute* beta = n.find_attribute("beta");
      if ((ta && ta->i) || (alpha && alpha->f != 1.0f) || (beta && beta->f != 1.0f) || w->tensor.rank() != 2)
        why = "Gemm with transA, alpha or beta";
      else if (bias && bias->tensor.numel() != w->tensor.shape()[n.find_attribute("transB") && n.find_attribute("transB")->i ? 0 : 1])
        why = "Gemm bias is not one value per output";
    }
    if (!why.empty()) {
      report.skipped.push_back((n.name.empty() ? n.op_type : n.name) + ": " + why);
      nodes.push_back(n);
      continue;
    }
    calib::ValueRange y_range = *out_range;
    if (!conv && bias) {
      // QLinearMatMul's output comes before the bias is added: widen the range by it.
      const Tensor& bt = bias->tensor;
      const float bmin = *std::min_element(bt.data<float>(), bt.data<float>() + bt.numel());
      const float bmax = *std::max_element(bt.data<float>(), bt.data<float>() + bt.numel());
      y_range = {y_range.min - std::max(bmax, 0.0f), y_range.max - std::min(bmin, 0.0f)};
    }
    const Affine in = affine_for(*in_range), outp = affine_for(y_range);
    const std::string base = n.outputs[0];
    const std::string x_scale = b.add(base + "_x_scale", scalar_f32(in.scale));
    const std::string x_zero = b.add(base + "_x_zero", scalar_u8(in.zero));
    const std::string y_scale = b.add(base + "_y_scale", scalar_f32(outp.scale));
    const std::string y_zero = b.add(base + "_y_zero", scalar_u8(outp.zero));
    const std::string xq = base + "_x_q", yq = base + "_y_q";
    nodes.push_back(Node{base + "_quantize", "QuantizeLinear", "", {n.inputs[0], x_scale, x_zero}, {xq}, {}, {}});
    const Tensor& wt = w->tensor;
    std::vector<float> scales;
    std::string y_float = n.outputs[0];
    if (conv) {
      const int64_t m = wt.shape()[0];
      std::vector<int8_t> codes = per_channel_int8(wt.data<float>(), m, m ? wt.numel() / m : 0, scales);
      const std::string wq = b.add(base + "_w_q", Tensor::from_values<int8_t>(DType::I8, wt.shape(), codes));
      const std::string ws = b.add(base + "_w_scale", Tensor::from_values<float>(DType::F32, {m}, scales));
      const std::string wz = b.add(base + "_w_zero", Tensor::from_values<int8_t>(DType::I8, {m}, std::vector<int8_t>(static_cast<size_t>(m), 0)));
      std::vector<std::string> inputs = {xq, x_scale, x_zero, wq, ws, wz, y_scale, y_zero};
      if (bias) {
        std::vector<int32_t> bq(static_cast<size_t>(m));
        for (int64_t i = 0; i < m; ++i)
          bq[static_cast<size_t>(i)] = static_cast<int32_t>(
              std::nearbyint(static_cast<double>(bias->tensor.data<float>()[i]) / (static_cast<double>(in.scale) * scales[static_cast<size_t>(i)])));
        inputs.push_back(b.add(base + "_bias_q", Tensor::from_values<int32_t>(DType::I32, {m}, bq)));
      }
      nodes.push_back(Node{base + "_qlinear", "QLinearConv", "", inputs, {yq}, n.attributes, {}});
    } else {
      // QLinearMatMul's B is [K, N] with per-column scales.
      const bool trans_b = gemm && n.find_attribute("transB") && n.find_attribute("transB")->i;
      const int64_t k = trans_b ? wt.shape()[1] : wt.shape()[0], cols = trans_b ? wt.shape()[0] : wt.shape()[1];
      std::vector<float> rows(static_cast<size_t>(k * cols));  // output channel major
      for (int64_t c = 0; c < cols; ++c)
        for (int64_t i = 0; i < k; ++i)
          rows[static_cast<size_t>(c * k + i)] = trans_b ? wt.data<float>()[c * k + i] : wt.data<float>()[i * cols + c];
      const std::vector<int8_t> codes = per_channel_int8(rows.data(), cols, k, scales);
      std::vector<int8_t> kn(codes.size());
      for (int64_t c = 0; c < cols; ++c)
        for (int64_t i = 0; i < k; ++i) kn[static_cast<size_t>(i * cols + c)] = codes[static_cast<size_t>(c * k + i)];
      const std::string wq = b.add(base + "_w_q", Tensor::from_values<int8_t>(DType::I8, {k, cols}, kn));
      const std::string ws = b.add(base + "_w_scale", Tensor::from_values<float>(DType::F32, {cols}, scales));
      const std::string wz = b.add(base + "_w_zero", Tensor::from_values<int8_t>(DType::I8, {cols}, std::vector<int8_t>(static_cast<size_t>(cols), 0)));
      nodes.push_back(Node{base + "_qlinear", "QLinearMatMul", "", {xq, x_scale, x_zero, wq, ws, wz, y_scale, y_zero}, {yq}, {}, {}});
      if (bias) y_float = base + "_no_bias";
    }
    nodes.push_back(Node{base + "_dequantize", "DequantizeLinear", "", {yq, y_scale, y_zero}, {y_float}, {}, {}});
    if (!conv && bias) nodes.push_back(Node{base + "_bias", "Add", "", {y_float, n.inputs[2]}, {n.outputs[0]}, {}, {}});
    report.layers.push_back({n.name, n.op_type, in.scale, outp.scale, in.zero, outp.zero, calib::observer_name(observer), rule_label});
    converted.insert(w->name);
    if (conv && bias) converted.insert(bias->name);
  }
  g.nodes = std::move(nodes);
  for (auto& t : b.added) g.initializers.push_back(std::move(t));
  // The float weights of converted Convs and MatMuls are dropped once nothing reads them.
  runtime::remove_unused_initializers(out, converted);
  std::vector<std::string> warnings;
  require_changes(static_cast<int64_t>(report.layers.size()),
                  "--activations int8 converted no layer (only Conv, MatMul and Gemm of the main graph with a constant "
                  "weight and calibrated input and output ranges; " + std::to_string(report.skipped.size()) + " left float)",
                  rules, allow_empty, warnings);
  report.skipped.insert(report.skipped.end(), warnings.begin(), warnings.end());
  return out;
}

}  // namespace slmopt::passes
