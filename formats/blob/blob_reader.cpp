#include <onnx/onnx_pb.h>

#include <cstring>
#include <filesystem>
#include <google/protobuf/io/coded_stream.h>

#include "blob/blob_io.hpp"
#include "blob/slmblob.h"
#include "common/blob_container.hpp"
#include "common/sha256.hpp"
#include "core/buffer.hpp"
#include "core/checked.hpp"
#include "core/quant_tensor.hpp"
#include "onnx/onnx_io.hpp"
#include "quant/scheme.hpp"
#include "quant/sparse.hpp"

namespace slmopt::blob {
namespace {

const char* section_name(uint32_t kind) {
  switch (kind) {
    case SLMBLOB_SECTION_METADATA: return "metadata";
    case SLMBLOB_SECTION_STRINGS: return "strings";
    case SLMBLOB_SECTION_TENSORS: return "tensors";
    case SLMBLOB_SECTION_GRAPH: return "graph";
    case SLMBLOB_SECTION_GOLDEN: return "golden";
    case SLMBLOB_SECTION_WEIGHTS: return "weights";
    default: return "unknown";
  }
}

DType dtype_or_throw(uint32_t onnx_code, const std::string& what, const std::string& path) {
  const auto d = dtype_from_onnx(static_cast<int>(onnx_code));
  if (!d || *d == DType::String) throw_bad_input(what + ": unknown element type " + std::to_string(onnx_code), path);
  return *d;
}

}  // namespace

struct BlobFile::Impl {
  std::shared_ptr<const MappedFile> file;
  slmblob blob{};
};

bool is_blob_file(const std::string& path) {
  static const char magic[8] = {'S', 'L', 'M', 'B', 'L', 'O', 'B', 0x1A};
  return container::has_magic(path, magic);
}

namespace {

// Opens `blob` over data and checks the SHA-256 trailer; throws naming `name`.
std::string open_checked(slmblob& blob, const uint8_t* data, uint64_t size, const std::string& name) {
  const slmblob_status status = slmblob_open(&blob, data, size, 0);
  if (status != SLMBLOB_OK) {
    std::string message = slmblob_status_text(status);
    if (blob.error_section) message += std::string(" (") + section_name(blob.error_section) + " section)";
    throw_bad_input(message, name);
  }
  const uint64_t hashed = blob.size - SLMBLOB_TRAILER_SIZE;
  const Sha256 digest = sha256(data, hashed);
  if (std::memcmp(digest.data(), data + hashed, digest.size()) != 0)
    throw_bad_input("SHA-256 mismatch: the blob was modified after packing", name);
  return to_hex(digest);
}

}  // namespace

std::string check_blob_bytes(const uint8_t* data, uint64_t size, const std::string& name) {
  slmblob blob;
  return open_checked(blob, data, size, name);
}

BlobFile::BlobFile(const std::string& path) : path_(path), impl_(std::make_unique<Impl>()) {
  impl_->file = MappedFile::open(path);
  sha256_hex_ = open_checked(impl_->blob, impl_->file->data(), impl_->file->size(), path);
}

BlobFile::~BlobFile() = default;

uint64_t BlobFile::size() const { return impl_->blob.size; }
uint32_t BlobFile::alignment() const { return impl_->blob.alignment; }

nlohmann::json BlobFile::metadata() const {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
  slmblob_section(&impl_->blob, SLMBLOB_SECTION_METADATA, &data, &size);
  auto meta = nlohmann::json::parse(data, data + size, nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) throw_bad_input("metadata section is not a JSON object", path_);
  return meta;
}

Model BlobFile::model() const {
  const slmblob* b = &impl_->blob;
  const uint8_t* graph = nullptr;
  uint64_t graph_size = 0;
  slmblob_section(b, SLMBLOB_SECTION_GRAPH, &graph, &graph_size);
  if (graph_size > static_cast<uint64_t>(INT32_MAX)) throw_bad_input("graph section is too large", path_);
  onnx::ModelProto proto;
  google::protobuf::io::CodedInputStream stream(graph, static_cast<int>(graph_size));
  if (!proto.ParseFromCodedStream(&stream) || !stream.ConsumedEntireMessage())
    throw_bad_input("graph section is not a valid onnx.ModelProto", path_);
  Model model = onnx_format::model_from_proto(proto, std::filesystem::path(path_).parent_path().string(), path_);
  const nlohmann::json docs = metadata().value("tensor_docs", nlohmann::json::object());
  const uint8_t* base = impl_->file->data();
  auto view = [&](const void* data, uint64_t size) {
    return Buffer::view(impl_->file, static_cast<size_t>(static_cast<const uint8_t*>(data) - base), size);
  };
  for (uint32_t i = 0; i < slmblob_tensor_count(b); ++i) {
    slmblob_tensor t;
    if (slmblob_tensor_at(b, i, &t) != SLMBLOB_OK) throw_bad_input("malformed tensor table", path_);
    NamedTensor init;
    init.name = t.name;
    if (docs.is_object() && docs.contains(init.name) && docs[init.name].is_string()) init.doc = docs[init.name].get<std::string>();
    const std::vector<int64_t> shape(t.dims, t.dims + t.ndim);
    const std::string what = "tensor '" + init.name + "'";
    if (t.scheme[0] == 0) {
      const DType dtype = dtype_or_throw(t.dtype, what, path_);
      if (t.size != static_cast<uint64_t>(checked_mul(checked_numel(shape), dtype_size(dtype), "tensor byte size")))
        throw_bad_input(what + ": data size does not match its shape", path_);
      init.tensor = Tensor::from_buffer(dtype, shape, view(t.data, t.size));
    } else {
      auto q = std::make_shared<QuantTensor>();
      q->scheme = t.scheme;
      q->params.bits = static_cast<int>(t.bits);
      q->params.group = t.group;
      q->params.symmetric = t.symmetric != 0;
      q->params.scale_dtype = dtype_or_throw(t.scale_dtype, what + " scales", path_);
      q->params.sub_scale_bits = static_cast<int>(t.sub_scale_bits);
      q->params.super_block = t.super_block;
      q->shape = shape;
      q->transposed = t.transposed != 0;
      q->rows = t.rows;
      q->cols = t.cols;
      for (uint32_t k = 0; k < t.part_count; ++k) {
        slmblob_part p;
        if (slmblob_tensor_part(b, &t, k, &p) != SLMBLOB_OK) throw_bad_input(what + ": malformed part", path_);
        QuantPart part;
        part.name = p.name;
        part.bits = static_cast<int>(p.bits);
        part.count = static_cast<int64_t>(p.count);
        part.bytes = PartBytes::view(view(p.data, p.size));
        q->parts.push_back(std::move(part));
      }
      try {
        quant::validate_quant_tensor(*q);
      } catch (const Error& e) {
        throw_bad_input(what + ": " + e.what(), path_);
      }
      if ((t.sparse_format == SLMBLOB_SPARSE_BITMAP) != quant::is_sparse(*q))
        throw_bad_input(what + ": its sparse format (" + std::to_string(t.sparse_format) + ") does not match its parts", path_);
      init.tensor = Tensor::quantized(std::move(q));
    }
    model.graph.initializers.push_back(std::move(init));
  }
  require_unique_initializers(model.graph, path_);
  check_graph_structure(model.graph, path_);
  model.source_format = "blob";
  return model;
}

std::optional<GoldenVectors> BlobFile::golden() const {
  const slmblob* b = &impl_->blob;
  if (!slmblob_golden_samples(b)) return std::nullopt;
  GoldenVectors g;
  slmblob_golden_tolerance(b, &g.atol, &g.rtol);
  const uint32_t n_in = slmblob_golden_inputs(b), n_out = slmblob_golden_outputs(b);
  const uint8_t* base = impl_->file->data();
  for (uint32_t s = 0; s < slmblob_golden_samples(b); ++s) {
    g.inputs.emplace_back();
    g.outputs.emplace_back();
    for (uint32_t v = 0; v < n_in + n_out; ++v) {
      slmblob_value value;
      if (slmblob_golden_value(b, s, v, &value) != SLMBLOB_OK) throw_bad_input("malformed golden vectors", path_);
      const std::string what = std::string("golden value '") + value.name + "'";
      const DType dtype = dtype_or_throw(value.dtype, what, path_);
      if (value.elem_bits != 8u * static_cast<uint32_t>(dtype_size(dtype)))
        throw_bad_input(what + ": element size does not match its type", path_);
      const std::vector<int64_t> shape(value.dims, value.dims + value.ndim);
      Tensor t = Tensor::from_buffer(
          dtype, shape, Buffer::view(impl_->file, static_cast<size_t>(static_cast<const uint8_t*>(value.data) - base), value.size));
      auto& names = v < n_in ? g.input_names : g.output_names;
      if (s == 0) names.push_back(value.name);
      else if (names[v < n_in ? v : v - n_in] != value.name)
        throw_bad_input("golden samples name different values", path_);
      (v < n_in ? g.inputs : g.outputs).back().push_back(std::move(t));
    }
  }
  return g;
}

Model read_blob(const std::string& path) { return BlobFile(path).model(); }

}  // namespace slmopt::blob
