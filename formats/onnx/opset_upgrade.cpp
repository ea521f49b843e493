#include "onnx/opset_upgrade.hpp"

#include <onnx/onnx_pb.h>
#include <onnx/version_converter/convert.h>

#include <unordered_map>

#include "core/error.hpp"
#include "onnx/onnx_io.hpp"
#include "onnx/shape_inference.hpp"

namespace slmopt::onnx_format {

int onnx_opset(const Model& model) {
  for (const auto& o : model.opsets)
    if (o.domain.empty() || o.domain == "ai.onnx") return static_cast<int>(o.version);
  return 0;
}

Model with_opset_at_least(const Model& model, int target) {
  const int from = onnx_opset(model);
  if (from >= target) return model;
  const std::string who = model.source_path.empty() ? "the model" : model.source_path;
  if (from == 0) throw_usage(who + " imports no ai.onnx opset to raise to " + std::to_string(target));
  // Weights stay out of the converter: it rewrites nodes, never values.
  const onnx::ModelProto converted = [&] {
    // Shape constants (small) travel with their data so shapes can be inferred.
    onnx::ModelProto proto = model_to_proto_without_data(model, 4096);
    // Some adapters (Softmax 12 -> 13) need each input's rank: infer what can be.
    infer_shapes(proto);
    try {
      return onnx::version_conversion::ConvertVersion(proto, target);
    } catch (const std::exception& e) {
      throw_usage(who + ": ONNX's version converter cannot raise opset " + std::to_string(from) + " to " +
                  std::to_string(target) + ": " + e.what());
    }
  }();
  // The converter's own new constants (Clip's min and max, Slice's starts)
  // come back with data; the model's initializers come back as they were.
  std::unordered_map<std::string, const NamedTensor*> original;
  for (const auto& t : model.graph.initializers) original[t.name] = &t;
  onnx::ModelProto stripped = converted;
  auto* inits = stripped.mutable_graph()->mutable_initializer();
  for (int i = inits->size() - 1; i >= 0; --i)
    if (original.count(inits->Get(i).name())) inits->DeleteSubrange(i, 1);
  Model out = model_from_proto(stripped, {}, who);
  std::vector<NamedTensor> initializers;
  for (const auto& t : converted.graph().initializer())
    if (auto it = original.find(t.name()); it != original.end()) initializers.push_back(*it->second);
  initializers.insert(initializers.end(), out.graph.initializers.begin(), out.graph.initializers.end());
  out.graph.initializers = std::move(initializers);
  out.graph.value_info = model.graph.value_info;  // not the converter's inferred shapes
  out.provenance = model.provenance;
  out.source_format = model.source_format;
  out.source_path = model.source_path;
  return out;
}

}  // namespace slmopt::onnx_format
