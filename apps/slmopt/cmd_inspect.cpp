// slmopt inspect MODEL: what is in a model and what its weights would cost.
#include <cstdio>
#include <iostream>
#include <memory>

#include "blob/blob_io.hpp"
#include "cli_common.hpp"
#include "core/model_stats.hpp"
#include "core/weight_uses.hpp"
#include "runtime/constants.hpp"
#include "device_budget.hpp"
#include "model_io.hpp"

namespace slmopt::cli {
namespace {

struct InspectOptions {
  std::string model;
  int top = 0;  // 0: list every tensor
  std::string flash, ram, sector = "4096";
  uint32_t alignment = 64;
};

// What `pack` would need on the device; only when a budget is asked about,
// since it lays out the blob and runs the model once.
std::optional<DeviceFigures> device_figures(const InspectOptions& o, const Model& m) {
  if (o.flash.empty() && o.ram.empty()) return std::nullopt;
  DeviceFigures f;
  if (!o.flash.empty()) {
    const uint64_t sector = parse_size(o.sector, "--sector");
    if (sector == 0) throw_usage("--sector must be at least 1 byte");
    blob::BlobOptions bo;
    bo.alignment = o.alignment;
    const uint64_t size = blob::blob_size(m, bo);
    f.flash_bytes = (size + sector - 1) / sector * sector;
  }
  if (!o.ram.empty()) {
    const auto feeds = declared_shape_feeds(m);
    f.ram_bytes = activation_ram(m, feeds);
    f.ram_shapes = shapes_of(feeds);
  }
  return f;
}

std::string dims_to_string(const ValueInfo& v) {
  if (!v.opaque_type.empty()) return "(non-tensor)";
  if (!v.shape) return "[?]";
  std::string s = "[";
  for (size_t i = 0; i < v.shape->size(); ++i) {
    const Dim& d = (*v.shape)[i];
    if (i) s += ",";
    s += d.is_fixed() ? std::to_string(d.value) : (d.param.empty() ? "?" : d.param);
  }
  return s + "]";
}

nlohmann::ordered_json dims_to_json(const ValueInfo& v) {
  if (!v.shape) return nullptr;
  auto arr = nlohmann::ordered_json::array();
  for (const Dim& d : *v.shape) {
    if (d.is_fixed()) arr.push_back(d.value);
    else if (!d.param.empty()) arr.push_back(d.param);
    else arr.push_back(nullptr);
  }
  return arr;
}

std::string domain_label(const std::string& domain) { return domain.empty() ? "ai.onnx" : domain; }

nlohmann::ordered_json to_json(const InspectOptions& o, const Model& m, const ModelStats& s,
                               const std::optional<ArchConfig>& arch) {
  using J = nlohmann::ordered_json;
  J doc;
  doc["model"] = o.model;
  doc["format"] = m.source_format;
  if (m.source_format == "onnx") {
    doc["ir_version"] = m.ir_version;
    doc["producer"] = m.producer_name + (m.producer_version.empty() ? "" : " " + m.producer_version);
    J opsets = J::object();
    for (const auto& op : m.opsets) opsets[domain_label(op.domain)] = op.version;
    doc["opsets"] = opsets;
  }
  if (arch) {
    doc["architecture"] = {{"family", arch_family_name(arch->family)},
                           {"class", arch->architecture},
                           {"layers", arch->num_layers},
                           {"hidden_size", arch->hidden_size},
                           {"heads", arch->num_heads},
                           {"kv_heads", arch->num_kv_heads},
                           {"intermediate_size", arch->intermediate_size},
                           {"vocab_size", arch->vocab_size}};
  }
  auto values = [](const std::vector<ValueInfo>& vs) {
    J arr = J::array();
    for (const auto& v : vs)
      arr.push_back({{"name", v.name},
                     {"dtype", v.dtype ? J(dtype_name(*v.dtype)) : J(nullptr)},
                     {"shape", dims_to_json(v)}});
    return arr;
  };
  doc["inputs"] = values(m.graph.inputs);
  doc["outputs"] = values(m.graph.outputs);
  doc["nodes"] = s.node_count;
  J ops = J::object();
  for (const auto& [op, n] : s.op_counts) ops[op] = n;
  doc["ops"] = ops;
  doc["subgraph_nodes"] = s.subgraph_node_count;
  J sub_ops = J::object();
  for (const auto& [op, n] : s.subgraph_op_counts) sub_ops[op] = n;
  doc["subgraph_ops"] = sub_ops;
  J tensors = J::array();
  for (const auto& t : s.tensors)
    tensors.push_back({{"name", t.name}, {"dtype", dtype_name(t.dtype)}, {"shape", t.shape},
                       {"params", t.params}, {"bytes", t.bytes}});
  doc["tensors"] = tensors;
  doc["totals"] = {{"tensors", s.tensors.size()},
                   {"params", s.params},
                   {"bytes", s.bytes},
                   {"quantizable_params", s.quantizable_params},
                   {"constant_params", s.constant_params},
                   {"subgraph_params", s.subgraph_params}};
  J est = J::array();
  for (const auto& e : s.estimates) est.push_back({{"bits_per_weight", e.bits_per_weight}, {"bytes", e.bytes}});
  doc["size_estimates"] = est;
  return doc;
}

void print_text(const InspectOptions& o, const Model& m, const ModelStats& s,
                const std::optional<ArchConfig>& arch) {
  std::printf("model      %s\n", o.model.c_str());
  if (m.source_format == "onnx") {
    std::printf("format     onnx (ir %lld, producer %s%s%s)\n", static_cast<long long>(m.ir_version),
                m.producer_name.empty() ? "unknown" : m.producer_name.c_str(),
                m.producer_version.empty() ? "" : " ", m.producer_version.c_str());
    std::string opsets;
    for (const auto& op : m.opsets)
      opsets += (opsets.empty() ? "" : ", ") + domain_label(op.domain) + " " + std::to_string(op.version);
    std::printf("opsets     %s\n", opsets.c_str());
  } else {
    std::printf("format     %s\n", m.source_format.c_str());
  }
  if (arch)
    std::printf("arch       %s (%s): %lld layers, hidden %lld, %lld heads / %lld kv, ffn %lld, vocab %lld\n",
                arch_family_name(arch->family), arch->architecture.c_str(),
                static_cast<long long>(arch->num_layers), static_cast<long long>(arch->hidden_size),
                static_cast<long long>(arch->num_heads), static_cast<long long>(arch->num_kv_heads),
                static_cast<long long>(arch->intermediate_size), static_cast<long long>(arch->vocab_size));
  for (const auto& v : m.graph.inputs)
    std::printf("input      %s  %s %s\n", v.name.c_str(), v.dtype ? dtype_name(*v.dtype) : "?",
                dims_to_string(v).c_str());
  for (const auto& v : m.graph.outputs)
    std::printf("output     %s  %s %s\n", v.name.c_str(), v.dtype ? dtype_name(*v.dtype) : "?",
                dims_to_string(v).c_str());
  if (s.node_count) {
    std::string ops;
    for (const auto& [op, n] : s.op_counts) ops += (ops.empty() ? "" : ", ") + op + " " + std::to_string(n);
    std::printf("nodes      %lld: %s\n", static_cast<long long>(s.node_count), ops.c_str());
  }
  if (s.subgraph_node_count) {
    std::string ops;
    for (const auto& [op, n] : s.subgraph_op_counts)
      ops += (ops.empty() ? "" : ", ") + op + " " + std::to_string(n);
    std::printf("subgraphs  %lld nodes: %s\n", static_cast<long long>(s.subgraph_node_count), ops.c_str());
  }

  size_t name_width = 4;
  for (const auto& t : s.tensors) name_width = std::max(name_width, std::min<size_t>(t.name.size(), 60));
  std::vector<const TensorStats*> rows;
  for (const auto& t : s.tensors) rows.push_back(&t);
  if (o.top > 0 && rows.size() > static_cast<size_t>(o.top)) {
    std::stable_sort(rows.begin(), rows.end(), [](auto* a, auto* b) { return a->bytes > b->bytes; });
    rows.resize(static_cast<size_t>(o.top));
  }
  std::printf("\n  %-*s  %-6s %-20s %12s %12s\n", static_cast<int>(name_width), "name", "dtype", "shape",
              "params", "bytes");
  for (const auto* t : rows)
    std::printf("  %-*s  %-6s %-20s %12s %12s\n", static_cast<int>(name_width), t->name.c_str(),
                dtype_name(t->dtype), shape_to_string(t->shape).c_str(), with_thousands(t->params).c_str(),
                with_thousands(static_cast<int64_t>(t->bytes)).c_str());
  if (rows.size() < s.tensors.size())
    std::printf("  ... %zu smaller tensors not shown (--top 0 lists all)\n", s.tensors.size() - rows.size());
  std::printf("\nparameters %s in %zu tensors, %s (%s bytes)\n", with_thousands(s.params).c_str(),
              s.tensors.size(), human_bytes(s.bytes).c_str(), with_thousands(static_cast<int64_t>(s.bytes)).c_str());
  if (s.constant_params || s.subgraph_params)
    std::printf("also       %s values in Constant nodes, %s parameters in subgraphs\n",
                with_thousands(s.constant_params).c_str(), with_thousands(s.subgraph_params).c_str());
  std::printf("weights at");
  for (const auto& e : s.estimates)
    std::printf("  %d bpw: %s", e.bits_per_weight, human_bytes(e.bytes).c_str());
  std::printf("\n           (%s parameters in float matrices quantized, the rest as stored)\n",
              with_thousands(s.quantizable_params).c_str());
}

// The weights every pass sees: those of the model with its constants made
// initializers (runtime/constants.hpp). The size estimates come from that
// form too, so a model whose weights sit in Constant nodes is costed.
struct FoundWeights {
  int64_t tensors = 0, params = 0;
  uint64_t bytes = 0;
  std::vector<std::string> normalized;  // what the normalization did
};

FoundWeights find_weights(const Model& m, ModelStats& s) {
  Model normalized = m;
  FoundWeights f;
  f.normalized = runtime::constants_to_initializers(normalized).lines();
  const ModelStats ns = compute_stats(normalized);
  s.estimates = ns.estimates;
  s.quantizable_params = ns.quantizable_params;
  for (const auto& [name, use] : find_weight_uses(normalized.graph)) {
    const Tensor& t = normalized.graph.find_initializer(name)->tensor;
    if (!is_float(t.dtype()) && !t.is_quantized()) continue;
    ++f.tensors;
    f.params += t.numel();
    f.bytes += t.nbytes();
  }
  return f;
}

}  // namespace

void setup_inspect(CLI::App& app, GlobalOptions& global) {
  auto opts = std::make_shared<InspectOptions>();
  auto* cmd = app.add_subcommand("inspect", "Show what a model holds and what its weights would cost");
  cmd->add_option("model", opts->model, "Model: .onnx, .safetensors, *.index.json or a Hugging Face folder")
      ->required();
  cmd->add_option("--top", opts->top, "List only the N largest tensors (0: all)")->check(non_negative());
  cmd->add_option("--flash", opts->flash, "Flash for the packed blob, e.g. 4MiB: print the need, exit 1 when it does not fit");
  cmd->add_option("--ram", opts->ram, "RAM for activations, e.g. 512KiB: print the need, exit 1 when it does not fit");
  cmd->add_option("--sector", opts->sector, "Flash erase size (as pack)")->capture_default_str();
  cmd->add_option("--align", opts->alignment, "Weight alignment (as pack)")->capture_default_str();
  cmd->callback([opts, &global] {
    Model m = load_model(opts->model);
    std::optional<ArchConfig> arch;
    if (m.source_format == "safetensors")
      if (auto config = find_hf_config(opts->model)) arch = read_hf_config(*config);
    ModelStats s = compute_stats(m);
    const FoundWeights found = find_weights(m, s);
    const auto device = device_figures(*opts, m);
    std::vector<std::string> problems;
    if (device) {
      const auto flash = opts->flash.empty() ? std::nullopt : std::optional(parse_size(opts->flash, "--flash"));
      const auto ram = opts->ram.empty() ? std::nullopt : std::optional(parse_size(opts->ram, "--ram"));
      problems = over_budget(*device, flash, ram);
      if (!problems.empty()) global.exit_code = 1;
    }
    if (global.json) {
      auto doc = to_json(*opts, m, s, arch);
      doc["weights"] = {{"tensors", found.tensors}, {"params", found.params}, {"bytes", found.bytes},
                        {"normalized", found.normalized}};
      if (device) {
        doc["device"] = {{"fits", problems.empty()}, {"problems", problems}};
        if (!opts->flash.empty()) doc["device"]["flash_bytes"] = device->flash_bytes;
        if (device->ram_bytes) doc["device"]["ram_bytes"] = *device->ram_bytes;
      }
      print_json(doc);
    } else {
      print_text(*opts, m, s, arch);
      std::printf("weights    %lld tensors, %s parameters, %s read by MatMul, Gemm, Conv, LSTM, ... (what quantize and prune change)\n",
                  static_cast<long long>(found.tensors), with_thousands(found.params).c_str(), human_bytes(found.bytes).c_str());
      for (const auto& line : found.normalized) std::printf("           found after: %s\n", line.c_str());
      if (device && !opts->flash.empty())
        std::printf("flash      %s as a blob (%s sectors), budget %s\n", human_bytes(device->flash_bytes).c_str(), opts->sector.c_str(),
                    opts->flash.c_str());
      if (device && device->ram_bytes)
        std::printf("RAM        %s of activations, inputs and kernel scratch for %s, budget %s\n", human_bytes(*device->ram_bytes).c_str(),
                    device->ram_shapes.c_str(), opts->ram.c_str());
    }
    if (!global.quiet)
      for (const auto& p : problems) std::fprintf(stderr, "slmopt: %s: does not fit the device: %s\n", opts->model.c_str(), p.c_str());
  });
}

}  // namespace slmopt::cli
