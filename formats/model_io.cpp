#include "model_io.hpp"

#include <filesystem>

#include "blob/blob_io.hpp"
#include "llama2c/llama2c_io.hpp"
#include "llm/decoder_graph.hpp"
#include "onnx/onnx_io.hpp"
#include "onnx/qdq_export.hpp"
#include "safetensors/safetensors_io.hpp"
#include "slm/slm_io.hpp"

namespace slmopt {
namespace fs = std::filesystem;


ModelFormat detect_format(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "model.onnx", ec) && !fs::exists(fs::path(path) / "model.safetensors", ec))
      throw_bad_input("folder holds model.onnx; pass the file itself", path);
    return ModelFormat::Safetensors;
  }
  if (fs::is_regular_file(path, ec) && blob::is_blob_file(path)) return ModelFormat::Blob;
  if (path.ends_with(".onnx")) return ModelFormat::Onnx;
  if (path.ends_with(".bin")) return ModelFormat::Llama2c;
  if (path.ends_with(".slm")) return ModelFormat::Slm;
  if (path.ends_with(".safetensors") || path.ends_with(".safetensors.index.json"))
    return ModelFormat::Safetensors;
  throw_bad_input("unknown model format (expected .onnx, .slm, .safetensors, "
                  ".safetensors.index.json, a Hugging Face folder, a llama2.c .bin or a blob from slmopt pack)",
                  path);
}

namespace {

// A Hugging Face checkpoint becomes its architecture's graph; bare weights stay weights.
Model read_safetensors_model(const std::string& path) {
  const auto config_path = find_hf_config(path);
  if (!config_path) return safetensors::read_model(path);
  const ArchConfig config = read_hf_config(*config_path);
  auto contents = safetensors::read(path);
  Model m = llm::build_decoder(config, std::move(contents.tensors), path);
  m.source_format = "safetensors";
  return m;
}

}  // namespace

namespace {

Model read_any(const std::string& path) {
  switch (detect_format(path)) {
    case ModelFormat::Onnx: return onnx_format::read_onnx(path);
    case ModelFormat::Safetensors: return read_safetensors_model(path);
    case ModelFormat::Llama2c: return llama2c::read_model(path);
    case ModelFormat::Slm: return slm::read_slm(path);
    case ModelFormat::Blob: return blob::read_blob(path);
  }
  throw_internal("unreachable");
}

}  // namespace

Model load_model(const std::string& path) {
  Model m = read_any(path);
  m.source_path = path;
  return m;
}

void save_model(const Model& model, const std::string& path) {
  if (path.ends_with(".slm")) return slm::write_slm(model, path);
  bool quantized = false;
  for (const auto& init : model.graph.initializers) quantized = quantized || init.tensor.is_quantized();
  // ONNX holds quantized weights as DequantizeLinear of int8 codes where exact.
  if (path.ends_with(".onnx")) return onnx_format::write_onnx(quantized ? onnx_format::to_qdq(model) : model, path);
  if (path.ends_with(".bin")) return llama2c::write_checkpoint(model, path);
  for (const auto& init : model.graph.initializers)
    if (init.tensor.is_quantized())
      throw_usage("'" + init.name + "' is quantized: write .slm or .onnx (safetensors cannot hold our schemes)");
  if (path.ends_with(".safetensors")) return safetensors::write_model(model, path);
  throw_usage("cannot tell the output format of '" + path + "' (use .onnx, .slm, .safetensors or .bin for llama2.c)");
}

std::optional<std::string> find_hf_config(const std::string& model_path) {
  std::error_code ec;
  fs::path dir = fs::is_directory(model_path, ec) ? fs::path(model_path) : fs::path(model_path).parent_path();
  fs::path config = dir / "config.json";
  if (fs::exists(config, ec)) return config.string();
  return std::nullopt;
}

}  // namespace slmopt
