// slmopt convert IN -o OUT: re-encode a model (ONNX <-> ONNX with or without
// external data, safetensors <-> safetensors with sharding, ONNX weights to
// safetensors; --constants-to-initializers: every weight an initializer).
// Lossless: tensors are copied bit for bit.
#include <algorithm>
#include <iostream>
#include <memory>

#include "cli_common.hpp"
#include "model_io.hpp"
#include "onnx/onnx_io.hpp"
#include "onnx/qdq_export.hpp"
#include "runtime/constants.hpp"
#include "safetensors/safetensors_io.hpp"

namespace slmopt::cli {
namespace {

struct ConvertOptions {
  std::string input;
  std::string output;
  std::string external = "auto";
  uint64_t shard_bytes = 0;
  bool weights_only = false;
  bool constants_to_initializers = false;
};


void run_convert(const ConvertOptions& o, const GlobalOptions& global) {
  Model m = load_model(o.input);
  std::vector<std::string> normalized;
  if (o.constants_to_initializers) {
    normalized = runtime::constants_to_initializers(m).lines();
    if (normalized.empty())
      throw_usage("--constants-to-initializers: " + o.input +
                  " has no Constant node, body initializer or view of a constant to move; its weights are initializers already");
  }
  if (o.output.ends_with(".onnx")) {
    if (m.graph.nodes.empty())
      throw_usage("an ONNX output needs a graph; these weights have none (a config.json beside them gives one)");
    onnx_format::WriteOptions w;
    w.external = o.external == "always"  ? onnx_format::ExternalData::Always
                 : o.external == "never" ? onnx_format::ExternalData::Never
                                         : onnx_format::ExternalData::Auto;
    // Quantized weights (from .slm or a blob) as DequantizeLinear of their codes, as quantize -o x.onnx writes them.
    const bool quantized = std::any_of(m.graph.initializers.begin(), m.graph.initializers.end(),
                                       [](const NamedTensor& t) { return t.tensor.is_quantized(); });
    onnx_format::write_onnx(quantized ? onnx_format::to_qdq(m) : m, o.output, w);
  } else if (o.output.ends_with(".slm") || o.output.ends_with(".bin")) {  // .bin: a llama2.c checkpoint
    save_model(m, o.output);
  } else if (o.shard_bytes > 0 || o.output.ends_with("/")) {
    if (!m.graph.nodes.empty() && !o.weights_only)
      throw_usage("the model has a graph; pass --weights-only to keep only its weights");
    safetensors::write_sharded(o.output, m.graph.initializers, m.metadata,
                               o.shard_bytes ? o.shard_bytes : UINT64_MAX);
  } else if (o.output.ends_with(".safetensors")) {
    if (!m.graph.nodes.empty() && !o.weights_only)
      throw_usage("the model has a graph; pass --weights-only to keep only its weights");
    m.graph.nodes.clear();
    safetensors::write_model(m, o.output);
  } else {
    throw_usage("cannot tell the output format of '" + o.output +
                "' (use .onnx, .slm, .safetensors, .bin for llama2.c, or a folder with --shard-size)");
  }
  if (global.json) {
    print_json({{"input", o.input}, {"output", o.output}, {"tensors", m.graph.initializers.size()}, {"normalized", normalized}});
  } else if (!global.quiet) {
    for (const auto& line : normalized) std::cerr << line << "\n";
    std::cerr << "wrote " << o.output << " (" << m.graph.initializers.size() << " tensors)\n";
  }
}

}  // namespace

void setup_convert(CLI::App& app, const GlobalOptions& global) {
  auto opts = std::make_shared<ConvertOptions>();
  auto* cmd = app.add_subcommand("convert", "Re-encode a model losslessly (external data, sharding, safetensors)");
  cmd->add_option("input", opts->input, "Input model")->required();
  cmd->add_option("-o,--output", opts->output, "Output: .onnx, .slm, .safetensors, or a folder for shards")->required();
  cmd->add_option("--external", opts->external, "ONNX external data: auto (only past 2 GiB), always, never")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  cmd->add_option("--shard-size", opts->shard_bytes, "Write sharded safetensors of at most this many bytes each");
  cmd->add_flag("--constants-to-initializers", opts->constants_to_initializers,
                "Make every Constant node, If/Loop/Scan body initializer and view of a constant an initializer of the main graph");
  cmd->add_flag("--weights-only", opts->weights_only, "Allow dropping the graph when writing safetensors");
  cmd->callback([opts, &global] { run_convert(*opts, global); });
}

}  // namespace slmopt::cli
