#include <google/protobuf/io/coded_stream.h>

#include <climits>
#include <filesystem>
#include <unordered_set>

#include "common/provenance_json.hpp"
#include "core/buffer.hpp"
#include "onnx/onnx_io.hpp"
#include "onnx/onnx_tensor.hpp"

namespace slmopt::onnx_format {
namespace {

class Reader {
 public:
  explicit Reader(std::string base_dir) : resolver_(std::move(base_dir)) {}

  Graph graph(const onnx::GraphProto& g) {
    return with_context("graph '" + g.name() + "'", [&] {
      if (g.sparse_initializer_size())
        throw_bad_input("sparse initializers are not supported; densify the model first");
      if (g.quantization_annotation_size())
        throw_bad_input("tensor quantization annotations are not supported");
      Graph out;
      out.name = g.name();
      out.doc = g.doc_string();
      std::unordered_set<std::string> seen;
      for (const auto& t : g.initializer()) {
        if (!seen.insert(t.name()).second)
          throw_bad_input("initializer name '" + t.name() + "' appears twice");
        out.initializers.push_back({t.name(), decode_tensor(t, resolver_), t.doc_string()});
      }
      for (const auto& v : g.input()) out.inputs.push_back(value_info(v));
      for (const auto& v : g.output()) out.outputs.push_back(value_info(v));
      for (const auto& v : g.value_info()) out.value_info.push_back(value_info(v));
      for (const auto& n : g.node()) out.nodes.push_back(node(n));
      sort_topologically(out);
      return out;
    });
  }

 private:
  ValueInfo value_info(const onnx::ValueInfoProto& v) {
    ValueInfo out;
    out.name = v.name();
    out.doc = v.doc_string();
    if (!v.has_type()) return out;
    const auto& type = v.type();
    out.denotation = type.denotation();
    std::optional<DType> dtype;
    if (type.has_tensor_type()) dtype = dtype_from_onnx(type.tensor_type().elem_type());
    if (!dtype) {
      // Sequences, maps, optionals, sparse tensors and exotic element types are
      // kept verbatim: no pass needs to look inside them.
      out.opaque_type = type.SerializeAsString();
      return out;
    }
    out.dtype = dtype;
    if (type.tensor_type().has_shape()) {
      std::vector<Dim> dims;
      for (const auto& d : type.tensor_type().shape().dim()) {
        Dim dim;
        if (d.has_dim_value() && d.dim_value() < 0)
          throw_bad_input("value '" + v.name() + "' has a negative dimension " + std::to_string(d.dim_value()));
        if (d.has_dim_value()) dim.value = d.dim_value();
        if (d.has_dim_param()) dim.param = d.dim_param();
        dim.denotation = d.denotation();
        dims.push_back(std::move(dim));
      }
      out.shape = std::move(dims);
    }
    return out;
  }

  Attribute attribute(const onnx::AttributeProto& a) {
    return with_context("attribute '" + a.name() + "'", [&] {
      Attribute out;
      out.name = a.name();
      out.doc = a.doc_string();
      out.ref_attr_name = a.ref_attr_name();
      switch (a.type()) {
        case onnx::AttributeProto::FLOAT:
          out.type = AttrType::Float;
          out.f = a.f();
          break;
        case onnx::AttributeProto::INT:
          out.type = AttrType::Int;
          out.i = a.i();
          break;
        case onnx::AttributeProto::STRING:
          out.type = AttrType::String;
          out.s = a.s();
          break;
        case onnx::AttributeProto::TENSOR:
          out.type = AttrType::Tensor;
          out.tensors.push_back(named(a.t()));
          break;
        case onnx::AttributeProto::GRAPH:
          out.type = AttrType::Graph;
          out.graphs.push_back(graph(a.g()));
          break;
        case onnx::AttributeProto::FLOATS:
          out.type = AttrType::Floats;
          out.floats.assign(a.floats().begin(), a.floats().end());
          break;
        case onnx::AttributeProto::INTS:
          out.type = AttrType::Ints;
          out.ints.assign(a.ints().begin(), a.ints().end());
          break;
        case onnx::AttributeProto::STRINGS:
          out.type = AttrType::Strings;
          out.strings.assign(a.strings().begin(), a.strings().end());
          break;
        case onnx::AttributeProto::TENSORS:
          out.type = AttrType::Tensors;
          for (const auto& t : a.tensors()) out.tensors.push_back(named(t));
          break;
        case onnx::AttributeProto::GRAPHS:
          out.type = AttrType::Graphs;
          for (const auto& g : a.graphs()) out.graphs.push_back(graph(g));
          break;
        case onnx::AttributeProto::TYPE_PROTO:
          out.type = AttrType::TypeProto;
          out.s = a.tp().SerializeAsString();
          break;
        case onnx::AttributeProto::TYPE_PROTOS:
          out.type = AttrType::TypeProtos;
          for (const auto& tp : a.type_protos()) out.strings.push_back(tp.SerializeAsString());
          break;
        default:
          throw_bad_input("attribute type " + std::to_string(a.type()) + " is not supported");
      }
      return out;
    });
  }

  NamedTensor named(const onnx::TensorProto& t) {
    return {t.name(), decode_tensor(t, resolver_), t.doc_string()};
  }

  Node node(const onnx::NodeProto& n) {
    std::string label = n.name().empty() ? "(unnamed)" : n.name();
    return with_context("node '" + label + "' (" + n.op_type() + ")", [&] {
      Node out;
      out.name = n.name();
      out.op_type = n.op_type();
      out.domain = n.domain();
      out.doc = n.doc_string();
      out.inputs.assign(n.input().begin(), n.input().end());
      out.outputs.assign(n.output().begin(), n.output().end());
      for (const auto& a : n.attribute()) out.attributes.push_back(attribute(a));
      return out;
    });
  }

  ExternalDataResolver resolver_;
};

}  // namespace

namespace {

// Sanity bounds, not a list of what the runtime implements: versions past
// these are no ONNX release's, and a version below 1 none at all.
constexpr int64_t kNewestIrVersion = 12;
constexpr int64_t kNewestOnnxOpset = 26;

void check_versions(const Model& m) {
  if (m.ir_version < 1 || m.ir_version > kNewestIrVersion)
    throw_bad_input("IR version " + std::to_string(m.ir_version) + " is not one ONNX defines (1 to " +
                    std::to_string(kNewestIrVersion) + ")");
  for (const auto& o : m.opsets) {
    if (o.version < 1) throw_bad_input("opset '" + o.domain + "' has version " + std::to_string(o.version));
    if ((o.domain.empty() || o.domain == "ai.onnx") && o.version > kNewestOnnxOpset)
      throw_bad_input("ai.onnx opset " + std::to_string(o.version) + " is newer than any ONNX release (up to " +
                      std::to_string(kNewestOnnxOpset) + ")");
  }
}

}  // namespace

Model model_from_proto(const onnx::ModelProto& p, const std::string& base_dir,
                       const std::string& file) {
  try {
    if (p.functions_size())
      throw_bad_input("model-local functions are not supported; inline them first");
    if (p.training_info_size()) throw_bad_input("training information is not supported");
    if (!p.has_graph()) throw_bad_input("the model has no graph");
    Model m;
    m.source_format = "onnx";
    m.ir_version = p.ir_version();
    m.producer_name = p.producer_name();
    m.producer_version = p.producer_version();
    m.domain = p.domain();
    m.model_version = p.model_version();
    m.doc = p.doc_string();
    for (const auto& o : p.opset_import()) m.opsets.push_back({o.domain(), o.version()});
    for (const auto& kv : p.metadata_props()) {
      if (kv.key() == kProvenanceKey)
        m.provenance = with_context("metadata", [&] { return provenance_from_json(kv.value()); });
      else
        m.metadata.emplace_back(kv.key(), kv.value());
    }
    check_versions(m);
    Reader reader(base_dir);
    m.graph = reader.graph(p.graph());
    return m;
  } catch (Error& e) {
    e.set_file_if_empty(file);
    throw;
  }
}

Model read_onnx(const std::string& path) {
  auto file = MappedFile::open(path);
  if (file->size() > static_cast<size_t>(INT_MAX))
    throw_bad_input("file is larger than protobuf's 2 GiB message limit; "
                    "large models must keep their weights in external data",
                    path);
  onnx::ModelProto proto;
  google::protobuf::io::CodedInputStream stream(file->data(), static_cast<int>(file->size()));
  stream.SetRecursionLimit(256);
  if (!proto.ParseFromCodedStream(&stream) || !stream.ConsumedEntireMessage())
    throw_bad_input("not a valid ONNX model (protobuf parse failed)", path);
  std::string base_dir = std::filesystem::path(path).parent_path().string();
  Model m = model_from_proto(proto, base_dir, path);
  check_graph_structure(m.graph, path);
  return m;
}

}  // namespace slmopt::onnx_format
