// Chooses a reader or writer by the path: `.onnx` files, safetensors files,
// sharded indexes (`*.index.json`), Hugging Face folders, llama2.c checkpoints
// (`.bin`), and flat blobs (recognised by their magic, whatever their name).
// Safetensors with a config.json beside them of a supported architecture load
// as that architecture's graph; without one, as weights alone.
#pragma once

#include <optional>
#include <string>

#include "core/ir.hpp"
#include "hf_config/hf_config.hpp"

namespace slmopt {

enum class ModelFormat { Onnx, Safetensors, Slm, Blob, Llama2c };

// Throws Error(BadInput) for a path whose format it cannot tell.
ModelFormat detect_format(const std::string& path);
Model load_model(const std::string& path);
void save_model(const Model& model, const std::string& path);

// The config.json beside a safetensors model (or in its folder), if there is one.
std::optional<std::string> find_hf_config(const std::string& model_path);

}  // namespace slmopt
