#include "slm/slm_io.hpp"

#include <onnx/onnx_pb.h>

#include <filesystem>
#include <google/protobuf/io/coded_stream.h>
#include <nlohmann/json.hpp>

#include "common/blob_container.hpp"
#include "common/json_integer.hpp"
#include "core/buffer.hpp"
#include "core/checked.hpp"
#include "core/quant_tensor.hpp"
#include "onnx/onnx_io.hpp"
#include "quant/scheme.hpp"

namespace slmopt::slm {
namespace {

constexpr char kMagic[8] = {'S', 'L', 'M', 'O', 'P', 'T', 'I', 'R'};
constexpr int kVersion = 1;

nlohmann::json params_json(const QuantParams& p) {
  return {{"bits", p.bits},
          {"group", p.group},
          {"symmetric", p.symmetric},
          {"scale_dtype", dtype_name(p.scale_dtype)},
          {"sub_scale_bits", p.sub_scale_bits},
          {"super_block", p.super_block}};
}

}  // namespace

void write_slm(const Model& model, const std::string& path) {
  Model structure = model;
  structure.graph.initializers.clear();
  std::string graph_bytes;
  if (!onnx_format::model_to_proto(structure).SerializeToString(&graph_bytes))
    throw_internal("cannot serialize the graph of " + path);
  container::Writer layout;
  nlohmann::json header = {{"format", "slmopt-ir"}, {"version", kVersion}};
  header["graph"] = layout.add(reinterpret_cast<const uint8_t*>(graph_bytes.data()), graph_bytes.size());
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& init : model.graph.initializers) {
    const Tensor& t = init.tensor;
    nlohmann::json entry = {{"name", init.name}, {"shape", t.shape()}};
    if (!init.doc.empty()) entry["doc"] = init.doc;
    if (const QuantTensor* q = t.quant()) {
      nlohmann::json parts = nlohmann::json::array();
      for (const auto& part : q->parts) {
        nlohmann::json pj = layout.add(part.bytes.data(), part.bytes.size());
        pj["name"] = part.name;
        pj["bits"] = part.bits;
        pj["count"] = part.count;
        parts.push_back(pj);
      }
      entry["quant"] = {{"scheme", q->scheme},   {"params", params_json(q->params)}, {"transposed", q->transposed},
                        {"rows", q->rows},       {"cols", q->cols},                 {"parts", parts}};
    } else if (t.dtype() == DType::String) {
      throw_usage("string initializer '" + init.name + "' cannot be stored in .slm");
    } else {
      entry["dtype"] = dtype_name(t.dtype());
      entry["data"] = layout.add(t.bytes(), t.nbytes());
    }
    tensors.push_back(entry);
  }
  header["tensors"] = tensors;
  layout.write(path, kMagic, header);
}

bool is_slm_file(const std::string& path) { return container::has_magic(path, kMagic); }

Model read_slm(const std::string& path) {
  const container::Reader file(path, kMagic, "slmopt-ir");
  const nlohmann::json& header = file.header();
  const uint8_t* base = file.base();
  try {
    if (json_integer<int>(header.at("version")) != kVersion)
      throw_bad_input("version " + header.at("version").dump() + " is not supported (this build reads 1)", path);
  } catch (const nlohmann::json::exception& e) {
    throw_bad_input(std::string("malformed header: ") + e.what(), path);
  }
  auto blob = [&](const nlohmann::json& j, const std::string& what) { return file.blob(j, what); };
  try {
    auto [goff, glen] = blob(header.at("graph"), "graph");
    onnx::ModelProto proto;
    if (glen > static_cast<uint64_t>(INT32_MAX)) throw_bad_input("graph section is too large", path);
    google::protobuf::io::CodedInputStream stream(base + goff, static_cast<int>(glen));
    if (!proto.ParseFromCodedStream(&stream) || !stream.ConsumedEntireMessage())
      throw_bad_input("graph section is not a valid onnx.ModelProto", path);
    Model model = onnx_format::model_from_proto(proto, std::filesystem::path(path).parent_path().string(), path);
    for (const auto& entry : header.at("tensors")) {
      NamedTensor init;
      init.name = entry.at("name").get<std::string>();
      init.doc = entry.value("doc", std::string());
      const auto shape = json_integers<int64_t>(entry.at("shape"));
      const std::string what = "tensor '" + init.name + "'";
      if (entry.contains("quant")) {
        const auto& qj = entry.at("quant");
        auto q = std::make_shared<QuantTensor>();
        q->scheme = qj.at("scheme").get<std::string>();
        const auto& pj = qj.at("params");
        q->params.bits = json_integer<int>(pj.at("bits"));
        q->params.group = json_integer<int64_t>(pj.at("group"));
        q->params.symmetric = pj.at("symmetric").get<bool>();
        const auto scale = dtype_from_name(pj.at("scale_dtype").get<std::string>());
        if (!scale) throw_bad_input(what + ": unknown scale type", path);
        q->params.scale_dtype = *scale;
        q->params.sub_scale_bits = json_integer<int>(pj.at("sub_scale_bits"));
        q->params.super_block = json_integer<int64_t>(pj.at("super_block"));
        q->shape = shape;
        q->transposed = qj.at("transposed").get<bool>();
        q->rows = json_integer<int64_t>(qj.at("rows"));
        q->cols = json_integer<int64_t>(qj.at("cols"));
        if (q->rows < 0 || q->cols < 0 || checked_numel(shape) != checked_mul(q->rows, q->cols, "quantized tensor size"))
          throw_bad_input(what + ": rows x cols do not match its shape", path);
        for (const auto& partj : qj.at("parts")) {
          QuantPart part;
          part.name = partj.at("name").get<std::string>();
          part.bits = json_integer<int>(partj.at("bits"));
          part.count = json_integer<int64_t>(partj.at("count"));
          auto [off, len] = blob(partj, what + " part '" + part.name + "'");
          part.bytes = PartBytes::view(Buffer::view(file.file(), off, len));  // used in place, as blobs are
          q->parts.push_back(std::move(part));
        }
        try {
          quant::validate_quant_tensor(*q);
        } catch (const Error& e) {
          throw_bad_input(what + ": " + e.what(), path);
        }
        init.tensor = Tensor::quantized(std::move(q));
      } else {
        const auto dtype = dtype_from_name(entry.at("dtype").get<std::string>());
        if (!dtype || *dtype == DType::String) throw_bad_input(what + ": unknown element type", path);
        auto [off, len] = blob(entry.at("data"), what);
        const int64_t expected = checked_mul(checked_numel(shape), dtype_size(*dtype), "tensor byte size");
        if (static_cast<uint64_t>(expected) != len)
          throw_bad_input(what + ": " + std::to_string(len) + " bytes for shape " + shape_to_string(shape) + ", expected " +
                              std::to_string(expected),
                          path);
        init.tensor = Tensor::from_buffer(*dtype, shape, Buffer::view(file.file(), off, len));
      }
      model.graph.initializers.push_back(std::move(init));
    }
    require_unique_initializers(model.graph, path);
    check_graph_structure(model.graph, path);
    model.source_format = "slm";
    return model;
  } catch (const nlohmann::json::exception& e) {
    throw_bad_input(std::string("malformed header: ") + e.what(), path);
  } catch (Error& e) {
    if (e.file().empty()) e.add_context(path);
    throw;
  }
}

}  // namespace slmopt::slm
