// TensorProto <-> Tensor, shared by the ONNX reader and writer (internal header).
#pragma once

#include <map>
#include <memory>
#include <string>

#include <onnx/onnx_pb.h>

#include "core/tensor.hpp"

namespace slmopt::onnx_format {

// Resolves external-data references against the model's folder, refusing
// absolute paths and any path that leaves the folder (also through symlinks);
// maps each data file once.
class ExternalDataResolver {
 public:
  explicit ExternalDataResolver(std::string base_dir) : base_dir_(std::move(base_dir)) {}
  std::shared_ptr<const MappedFile> open(const std::string& location);

 private:
  std::string base_dir_;
  std::map<std::string, std::shared_ptr<const MappedFile>> files_;
};

Tensor decode_tensor(const onnx::TensorProto& proto, ExternalDataResolver& resolver);

// Fills proto's name-independent fields with the tensor inline (raw_data, or
// string_data for strings).
void encode_tensor_inline(const Tensor& tensor, onnx::TensorProto& proto);

// i4/u4 values as ONNX stores them: two a byte, low nibble first.
bool is_nibble_type(DType t);
std::string pack_nibbles(const Tensor& tensor);

}  // namespace slmopt::onnx_format
