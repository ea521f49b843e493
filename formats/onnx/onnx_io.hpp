// ONNX reader and writer: onnx.ModelProto <-> IR.
//
// Reading accepts every initializer encoding (raw_data, the typed repeated
// fields, float16/bfloat16 bit patterns in int32_data) and external data
// (location/offset/length relative to the model's folder, memory-mapped, never
// outside that folder). Writing always uses raw_data; tensors go to an external
// data file when asked or when the model would pass protobuf's 2 GiB limit.
#pragma once

#include <cstdint>
#include <string>

#include "core/ir.hpp"

namespace onnx {
class ModelProto;
class TensorProto;
}  // namespace onnx

namespace slmopt::onnx_format {

Model read_onnx(const std::string& path);

// `base_dir` resolves external data; `file` names the source in errors.
Model model_from_proto(const onnx::ModelProto& proto, const std::string& base_dir,
                       const std::string& file);

enum class ExternalData {
  Auto,    // external only when the model would exceed protobuf's 2 GiB limit
  Always,  // every initializer of at least `external_min_bytes` bytes
  Never,
};

struct WriteOptions {
  ExternalData external = ExternalData::Auto;
  uint64_t external_min_bytes = 1024;
  uint64_t auto_limit_bytes = 1536ull << 20;  // leave room for the graph below 2 GiB
  uint64_t external_alignment = 64;          // offsets in the data file
};

// Writes `path` (and `<file name>.data` beside it when external) atomically.
void write_onnx(const Model& model, const std::string& path, const WriteOptions& options = {});

// The proto as write_onnx would write it with all tensors inline (for tests and
// the ONNX checker). Throws when a tensor is too large to be inline.
onnx::ModelProto model_to_proto(const Model& model);
// The same with the data of initializers of `inline_below` bytes or more
// left out (name, type and dims only): for graph tools (shape inference, the
// version converter) that read shape constants but never weights.
onnx::ModelProto model_to_proto_without_data(const Model& model, uint64_t inline_below = 0);

// Decodes one TensorProto (any encoding); `base_dir` resolves external data.
Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& base_dir);

}  // namespace slmopt::onnx_format
