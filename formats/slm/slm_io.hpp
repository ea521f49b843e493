// .slm: the IR on disk, lossless, quantized tensors included.
//
//   bytes 0-7    magic "SLMOPTIR"
//   bytes 8-15   header length H (u64 little-endian)
//   bytes 16..   header: UTF-8 JSON, H bytes
//   then         zero padding to a multiple of 64; the data region
//
// The header names the graph (an onnx.ModelProto without the top-level
// initializers: nodes, attributes, subgraphs, metadata, provenance) and every
// top-level initializer in order, each at an offset (from the data region,
// 64-byte aligned) and length: float tensors as raw little-endian bytes,
// quantized tensors as their scheme, params and parts. docs/formats.md has
// the field-by-field description.
#pragma once

#include <string>

#include "core/ir.hpp"

namespace slmopt::slm {

// Writes atomically: a failure leaves no partial file.
void write_slm(const Model& model, const std::string& path);
// Validates every size, offset and part before use; Error(BadInput) names the file.
Model read_slm(const std::string& path);
// Whether the file starts with the .slm magic.
bool is_slm_file(const std::string& path);

}  // namespace slmopt::slm
