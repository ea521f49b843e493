#include "onnx/opset_upgrade.hpp"

#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
#include <onnx/version_converter/convert.h>

#include <unordered_map>

#include "core/error.hpp"
#include "onnx/onnx_io.hpp"

namespace slmopt::onnx_format {
namespace {

const onnx::TypeProto* type_of(const onnx::GraphProto& g, const std::string& name) {
  for (const auto* list : {&g.value_info(), &g.input(), &g.output()})
    for (const auto& v : *list)
      if (v.name() == name) return &v.type();
  return nullptr;
}

// ONNX 1.12's inference leaves a Reshape's output rankless when its shape is
// computed (Shape -> Slice -> Concat), though the shape's length is its rank.
// Giving those ranks lets inference carry on past it. True when it added any.
bool add_reshape_ranks(onnx::GraphProto& g) {
  bool added = false;
  for (const auto& n : g.node()) {
    if (n.op_type() != "Reshape" || n.input_size() < 2 || n.output_size() < 1) continue;
    const onnx::TypeProto* out = type_of(g, n.output(0));
    if (out && out->tensor_type().has_shape()) continue;
    const onnx::TypeProto* shape = type_of(g, n.input(1));
    const onnx::TypeProto* data = type_of(g, n.input(0));
    if (!shape || !data || !shape->tensor_type().has_shape() || shape->tensor_type().shape().dim_size() != 1 ||
        !shape->tensor_type().shape().dim(0).has_dim_value())
      continue;
    auto* v = g.add_value_info();
    v->set_name(n.output(0));
    v->mutable_type()->mutable_tensor_type()->set_elem_type(data->tensor_type().elem_type());
    auto* dims = v->mutable_type()->mutable_tensor_type()->mutable_shape();
    for (int64_t i = 0; i < shape->tensor_type().shape().dim(0).dim_value(); ++i) dims->add_dim();
    added = true;
  }
  return added;
}

void infer_shapes(onnx::ModelProto& proto) {
  const onnx::ShapeInferenceOptions options(false, 0, true);
  try {
    onnx::shape_inference::InferShapes(proto, onnx::OpSchemaRegistry::Instance(), options);
    if (add_reshape_ranks(*proto.mutable_graph()))
      onnx::shape_inference::InferShapes(proto, onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception&) {
    // The converter reports what it still lacks.
  }
}

}  // namespace

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
