#include "core/weight_uses.hpp"

#include <unordered_set>

namespace slmopt {

std::map<std::string, WeightUse> find_weight_uses(const Graph& g) {
  std::map<std::string, WeightUse> uses;
  std::unordered_set<std::string> weights;
  for (const auto& t : g.initializers) weights.insert(t.name);
  auto note = [&](const Node& n, size_t input, bool input_first, size_t activation, const std::string& reads_as = "") {
    if (input >= n.inputs.size() || !weights.count(n.inputs[input])) return;
    WeightUse u{n.name, reads_as.empty() ? n.op_type : reads_as, input_first, "", false};
    if (activation < n.inputs.size() && !weights.count(n.inputs[activation])) u.activation = n.inputs[activation];
    auto it = uses.find(n.inputs[input]);
    // A tied embedding is a Gather table first and the output layer later: the
    // later use, with an activation, is the one calibration can weigh errors by.
    const bool better = it != uses.end() && it->second.activation.empty() && !u.activation.empty() &&
                        it->second.input_axis_first == u.input_axis_first;
    if (it == uses.end() || better) uses[n.inputs[input]] = u;
  };
  // Layers inside If/Loop/Scan bodies read the main graph's initializers too.
  for_each_graph(g, [&](const Graph& body, int) {
    for (const Node& n : body.nodes) {
      // ONNX Runtime's fused self-attention reads its packed q|k|v weights as MatMul reads B.
      if (n.domain == "com.microsoft" && n.op_type == "Attention") note(n, 1, true, 0);
      // A convolution with its activation fused in (simplify --fuse-activations) reads its weights as Conv does.
      if (n.domain == "com.microsoft" && n.op_type == "FusedConv") note(n, 1, false, 0, "Conv");
      if (!n.domain.empty() && n.domain != "ai.onnx") continue;
      if (n.op_type == "MatMul") note(n, 1, true, 0);
      if (n.op_type == "Gemm") {
        const Attribute* tb = n.find_attribute("transB");
        const Attribute* ta = n.find_attribute("transA");
        note(n, 1, !(tb && tb->i), 0);
        if (auto it = uses.find(n.inputs.size() > 1 ? n.inputs[1] : ""); it != uses.end() && it->second.node == n.name)
          it->second.activation_transposed = ta && ta->i;
      }
      if (n.op_type == "Conv") note(n, 1, false, 0);
      // Weights without an activation of the same layout: quantized (and
      // dequantized where read) like a lookup table, no calibration statistics.
      if (n.op_type == "ConvTranspose") note(n, 1, false, n.inputs.size());
      if (n.op_type == "LSTM" || n.op_type == "GRU" || n.op_type == "RNN") {
        note(n, 1, false, n.inputs.size());
        note(n, 2, false, n.inputs.size());
      }
      if (n.op_type == "Gather") {
        const Attribute* axis = n.find_attribute("axis");
        if (!axis || axis->i == 0) note(n, 0, false, n.inputs.size());
      }
    }
  });
  return uses;
}

}  // namespace slmopt
