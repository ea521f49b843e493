#include "onnx/shape_inference.hpp"

#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <unordered_set>

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

}  // namespace

void infer_shapes(onnx::ModelProto& proto) {
  const onnx::ShapeInferenceOptions options(false, 0, true);
  try {
    onnx::shape_inference::InferShapes(proto, onnx::OpSchemaRegistry::Instance(), options);
    if (add_reshape_ranks(*proto.mutable_graph()))
      onnx::shape_inference::InferShapes(proto, onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception&) {
    // Inference stops at an op it does not know; what it reached stays.
  }
}

std::unordered_map<std::string, ValueInfo> infer_value_types(const Model& model) {
  onnx::ModelProto proto = model_to_proto_without_data(model, 4096);
  infer_shapes(proto);
  // Read back through the model reader: a graph with only inputs, one per value.
  onnx::ModelProto types;
  types.set_ir_version(proto.ir_version());
  *types.mutable_opset_import() = proto.opset_import();
  std::unordered_set<std::string> seen;
  const auto& g = proto.graph();
  for (const auto* list : {&g.input(), &g.output(), &g.value_info()})
    for (const auto& v : *list)
      if (v.type().has_tensor_type() && seen.insert(v.name()).second) *types.mutable_graph()->add_input() = v;
  const Model read = model_from_proto(types, {}, model.source_path);
  std::unordered_map<std::string, ValueInfo> out;
  for (const auto& v : read.graph.inputs) out[v.name] = v;
  return out;
}

}  // namespace slmopt::onnx_format
