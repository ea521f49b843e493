#include <climits>
#include <filesystem>
#include <functional>
#include <optional>

#include "common/provenance_json.hpp"
#include "core/atomic_file.hpp"
#include "onnx/onnx_io.hpp"
#include "onnx/onnx_tensor.hpp"

namespace slmopt::onnx_format {
namespace {

// Decides, per initializer, whether its bytes stay inline or go to the data file.
using InitializerSink = std::function<void(const NamedTensor&, onnx::TensorProto&)>;

void write_value_info(const ValueInfo& v, onnx::ValueInfoProto& p) {
  p.set_name(v.name);
  if (!v.doc.empty()) p.set_doc_string(v.doc);
  if (!v.opaque_type.empty()) {
    if (!p.mutable_type()->ParseFromString(v.opaque_type))
      throw_internal("value '" + v.name + "': stored type does not parse");
    return;
  }
  if (!v.dtype) return;
  auto* type = p.mutable_type();
  if (!v.denotation.empty()) type->set_denotation(v.denotation);
  auto* tt = type->mutable_tensor_type();
  tt->set_elem_type(traits(*v.dtype).onnx_code);
  if (!v.shape) return;
  auto* shape = tt->mutable_shape();
  for (const auto& d : *v.shape) {
    auto* dim = shape->add_dim();
    if (d.is_fixed()) dim->set_dim_value(d.value);
    else if (!d.param.empty()) dim->set_dim_param(d.param);
    if (!d.denotation.empty()) dim->set_denotation(d.denotation);
  }
}

void write_graph(const Graph& g, onnx::GraphProto& p, const InitializerSink& sink);

void encode_named_inline(const NamedTensor& t, onnx::TensorProto& p) {
  if (!t.name.empty()) p.set_name(t.name);
  if (!t.doc.empty()) p.set_doc_string(t.doc);
  encode_tensor_inline(t.tensor, p);
}

void write_attribute(const Attribute& a, onnx::AttributeProto& p, const InitializerSink& sink) {
  p.set_name(a.name);
  if (!a.doc.empty()) p.set_doc_string(a.doc);
  if (!a.ref_attr_name.empty()) p.set_ref_attr_name(a.ref_attr_name);
  // Attribute tensors (Constant values) stay inline; subgraph initializers
  // follow the same external-data policy as the main graph's.
  switch (a.type) {
    case AttrType::Float:
      p.set_type(onnx::AttributeProto::FLOAT);
      p.set_f(a.f);
      break;
    case AttrType::Int:
      p.set_type(onnx::AttributeProto::INT);
      p.set_i(a.i);
      break;
    case AttrType::String:
      p.set_type(onnx::AttributeProto::STRING);
      p.set_s(a.s);
      break;
    case AttrType::Tensor:
      p.set_type(onnx::AttributeProto::TENSOR);
      encode_named_inline(a.tensors.at(0), *p.mutable_t());
      break;
    case AttrType::Graph:
      p.set_type(onnx::AttributeProto::GRAPH);
      write_graph(a.graphs.at(0), *p.mutable_g(), sink);
      break;
    case AttrType::Floats:
      p.set_type(onnx::AttributeProto::FLOATS);
      for (float f : a.floats) p.add_floats(f);
      break;
    case AttrType::Ints:
      p.set_type(onnx::AttributeProto::INTS);
      for (int64_t i : a.ints) p.add_ints(i);
      break;
    case AttrType::Strings:
      p.set_type(onnx::AttributeProto::STRINGS);
      for (const auto& s : a.strings) p.add_strings(s);
      break;
    case AttrType::Tensors:
      p.set_type(onnx::AttributeProto::TENSORS);
      for (const auto& t : a.tensors) encode_named_inline(t, *p.add_tensors());
      break;
    case AttrType::Graphs:
      p.set_type(onnx::AttributeProto::GRAPHS);
      for (const auto& g : a.graphs) write_graph(g, *p.add_graphs(), sink);
      break;
    case AttrType::TypeProto:
      p.set_type(onnx::AttributeProto::TYPE_PROTO);
      if (!p.mutable_tp()->ParseFromString(a.s)) throw_internal("attribute '" + a.name + "': bad stored type");
      break;
    case AttrType::TypeProtos:
      p.set_type(onnx::AttributeProto::TYPE_PROTOS);
      for (const auto& s : a.strings)
        if (!p.add_type_protos()->ParseFromString(s)) throw_internal("attribute '" + a.name + "': bad stored type");
      break;
  }
}

void write_graph(const Graph& g, onnx::GraphProto& p, const InitializerSink& sink) {
  p.set_name(g.name);
  if (!g.doc.empty()) p.set_doc_string(g.doc);
  for (const auto& n : g.nodes) {
    auto* np = p.add_node();
    for (const auto& in : n.inputs) np->add_input(in);
    for (const auto& out : n.outputs) np->add_output(out);
    if (!n.name.empty()) np->set_name(n.name);
    np->set_op_type(n.op_type);
    if (!n.domain.empty()) np->set_domain(n.domain);
    for (const auto& a : n.attributes) write_attribute(a, *np->add_attribute(), sink);
    if (!n.doc.empty()) np->set_doc_string(n.doc);
  }
  for (const auto& t : g.initializers) {
    auto* tp = p.add_initializer();
    tp->set_name(t.name);
    if (!t.doc.empty()) tp->set_doc_string(t.doc);
    sink(t, *tp);
  }
  for (const auto& v : g.inputs) write_value_info(v, *p.add_input());
  for (const auto& v : g.outputs) write_value_info(v, *p.add_output());
  for (const auto& v : g.value_info) write_value_info(v, *p.add_value_info());
}

onnx::ModelProto build_proto(const Model& m, const InitializerSink& sink) {
  onnx::ModelProto p;
  p.set_ir_version(m.ir_version);
  for (const auto& o : m.opsets) {
    auto* op = p.add_opset_import();
    if (!o.domain.empty()) op->set_domain(o.domain);
    op->set_version(o.version);
  }
  if (!m.producer_name.empty()) p.set_producer_name(m.producer_name);
  if (!m.producer_version.empty()) p.set_producer_version(m.producer_version);
  if (!m.domain.empty()) p.set_domain(m.domain);
  if (m.model_version) p.set_model_version(m.model_version);
  if (!m.doc.empty()) p.set_doc_string(m.doc);
  write_graph(m.graph, *p.mutable_graph(), sink);
  for (const auto& [k, v] : m.metadata) {
    auto* kv = p.add_metadata_props();
    kv->set_key(k);
    kv->set_value(v);
  }
  if (!m.provenance.empty()) {
    auto* kv = p.add_metadata_props();
    kv->set_key(kProvenanceKey);
    kv->set_value(provenance_to_json(m.provenance));
  }
  return p;
}

uint64_t total_initializer_bytes(const Model& m) {
  uint64_t total = 0;
  for_each_graph(m.graph, [&](const Graph& g, int) {
    for (const auto& t : g.initializers) total += t.tensor.nbytes();
  });
  return total;
}

InitializerSink inline_sink() {
  return [](const NamedTensor& t, onnx::TensorProto& tp) { encode_tensor_inline(t.tensor, tp); };
}

}  // namespace

onnx::ModelProto model_to_proto(const Model& model) { return build_proto(model, inline_sink()); }

onnx::ModelProto model_to_proto_without_data(const Model& model, uint64_t inline_below) {
  return build_proto(model, [inline_below](const NamedTensor& t, onnx::TensorProto& tp) {
    if (!t.tensor.is_quantized() && t.tensor.nbytes() < inline_below) {
      encode_tensor_inline(t.tensor, tp);
      return;
    }
    tp.set_data_type(traits(t.tensor.dtype()).onnx_code);
    for (int64_t d : t.tensor.shape()) tp.add_dims(d);
  });
}

void write_onnx(const Model& model, const std::string& path, const WriteOptions& options) {
  try {
    bool external = options.external == ExternalData::Always ||
                    (options.external == ExternalData::Auto &&
                     total_initializer_bytes(model) > options.auto_limit_bytes);
    std::optional<AtomicFile> data_file;
    std::string data_name = std::filesystem::path(path).filename().string() + ".data";
    InitializerSink sink = inline_sink();
    if (external) {
      data_file.emplace(path + ".data");
      sink = [&](const NamedTensor& t, onnx::TensorProto& tp) {
        if (t.tensor.dtype() == DType::String || t.tensor.nbytes() < options.external_min_bytes) {
          encode_tensor_inline(t.tensor, tp);
          return;
        }
        uint64_t align = options.external_alignment ? options.external_alignment : 1;
        uint64_t offset = (data_file->bytes_written() + align - 1) / align * align;
        data_file->write_zeros(offset - data_file->bytes_written());
        const std::string nibbles = is_nibble_type(t.tensor.dtype()) ? pack_nibbles(t.tensor) : std::string();
        const uint64_t length = nibbles.empty() ? t.tensor.nbytes() : nibbles.size();
        if (nibbles.empty()) data_file->write(t.tensor.bytes(), t.tensor.nbytes());
        else data_file->write(nibbles);
        tp.set_data_type(traits(t.tensor.dtype()).onnx_code);
        for (int64_t d : t.tensor.shape()) tp.add_dims(d);
        tp.set_data_location(onnx::TensorProto::EXTERNAL);
        auto add = [&](const char* key, const std::string& value) {
          auto* kv = tp.add_external_data();
          kv->set_key(key);
          kv->set_value(value);
        };
        add("location", data_name);
        add("offset", std::to_string(offset));
        add("length", std::to_string(length));
      };
    }
    onnx::ModelProto proto = build_proto(model, sink);
    if (proto.ByteSizeLong() > static_cast<size_t>(INT_MAX))
      throw_bad_input("the model is larger than protobuf's 2 GiB limit; write it with external data");
    std::string bytes;
    if (!proto.SerializeToString(&bytes)) throw_internal("protobuf serialization failed");
    AtomicFile out(path);
    out.write(bytes);
    if (data_file) data_file->commit();
    out.commit();
  } catch (Error& e) {
    e.set_file_if_empty(path);
    throw;
  }
}

}  // namespace slmopt::onnx_format
