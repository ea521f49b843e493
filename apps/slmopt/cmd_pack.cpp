// slmopt pack MODEL -o model.bin: the flat, aligned blob a device uses in
// place, and what a firmware build needs beside it (--emit), checked against
// the device's flash and RAM (--flash, --ram).
#include <filesystem>
#include <iostream>
#include <memory>
#include <set>
#include <span>
#include <sstream>

#include "blob/blob_io.hpp"
#include "cli_common.hpp"
#include "common/sha256.hpp"
#include "core/atomic_file.hpp"
#include "core/buffer.hpp"
#include "device_budget.hpp"
#include "firmware/firmware_emit.hpp"
#include "model_io.hpp"
#include "ota/ota_package.hpp"
#include "passes/simplify.hpp"
#include "passes/sparse_storage.hpp"
#include "runtime/session.hpp"
#include "samples.hpp"

namespace slmopt::cli {
namespace {

namespace fs = std::filesystem;

struct PackOptions {
  std::string model, output;
  uint32_t alignment = 64;
  std::string emit = "bin";
  std::string sector = "4096";
  std::string name, version;
  std::string symbol, section = ".slmopt_model", ld_region;
  std::string partition_name = "model", partition_offset;
  std::string flash, ram;
  DataOptions golden;
  int golden_count = 4;
  float golden_atol = 1e-4f, golden_rtol = 1e-3f;
  std::string sign_key;
  bool dense = false;
  bool no_simplify = false;
};

const std::set<std::string> kEmitKinds = {"bin", "c-header", "partition", "ld", "ota"};

std::set<std::string> parse_emit(const std::string& text) {
  std::set<std::string> kinds;
  std::stringstream ss(text);
  for (std::string k; std::getline(ss, k, ',');) {
    if (k.empty()) continue;
    if (!kEmitKinds.count(k)) throw_usage("--emit: unknown output '" + k + "' (bin, c-header, partition, ld, ota)");
    kinds.insert(k);
  }
  return kinds;
}

// Runs the model on the samples to record what it outputs: the device's self-test.
blob::GoldenVectors record_golden(const Model& model, const std::vector<calib::Sample>& samples, const PackOptions& o) {
  runtime::Session session(model);
  blob::GoldenVectors g;
  g.atol = o.golden_atol;
  g.rtol = o.golden_rtol;
  for (const auto& sample : samples) {
    const auto outputs = session.run(sample);
    if (g.inputs.empty()) {
      for (const auto& [name, t] : sample) g.input_names.push_back(name);
      for (const auto& [name, t] : outputs) g.output_names.push_back(name);
    }
    g.inputs.emplace_back();
    g.outputs.emplace_back();
    for (const auto& [name, t] : sample) g.inputs.back().push_back(t);
    for (const auto& [name, t] : outputs) g.outputs.back().push_back(t);
  }
  return g;
}

void run_pack(const PackOptions& o, GlobalOptions& global) {
  const auto emit = parse_emit(o.emit);
  const uint64_t sector = parse_size(o.sector, "--sector");
  if (sector == 0 || sector > (uint64_t{1} << 24)) throw_usage("--sector must be from 1 byte to 16 MiB");
  const std::optional<uint64_t> flash = o.flash.empty() ? std::nullopt : std::optional(parse_size(o.flash, "--flash"));
  const std::optional<uint64_t> ram = o.ram.empty() ? std::nullopt : std::optional(parse_size(o.ram, "--ram"));
  const std::optional<uint64_t> offset =
      o.partition_offset.empty() ? std::nullopt : std::optional(parse_size(o.partition_offset, "--partition-offset"));
  if (!o.sign_key.empty() && !emit.count("ota")) throw_usage("--sign signs the OTA package: add ota to --emit");
  const bool want_golden = !o.golden.dir.empty() || !o.golden.inputs.empty() || o.golden.random > 0;
  const bool show = !global.quiet && !global.json;

  Model model = load_model(o.model);
  // The device runs the graph as packed: shapes and constants it would
  // recompute on every inference are computed here, once (exact rewrites only).
  passes::SimplifyReport simplified;
  if (!o.no_simplify && !model.graph.nodes.empty()) {
    passes::SimplifyOptions so;
    so.fold_batch_norm = false;
    so.keep_unread_initializers = true;
    simplified = passes::simplify(model, so);
  }
  const passes::SparseStorageReport sparse = o.dense ? passes::SparseStorageReport{} : passes::store_sparse_floats(model);
  blob::BlobOptions bo;
  bo.alignment = o.alignment;
  bo.model_name = o.name.empty() ? fs::path(o.model).stem().string() : o.name;
  bo.model_version = o.version;
  std::error_code ec;
  if (fs::is_regular_file(o.model, ec)) bo.source_sha256 = sha256_file_hex(o.model);

  std::vector<calib::Sample> samples;
  if (want_golden) {
    samples = load_requested_samples(o.golden, runtime::Session(model).feed_inputs());
    if (samples.size() > static_cast<size_t>(std::max(1, o.golden_count))) samples.resize(std::max(1, o.golden_count));
    if (show) std::cerr << "recording golden outputs for " << samples.size() << " sample(s)\n";
    bo.golden = record_golden(model, samples, o);
  }

  // The blob streams into a temporary file beside the output, kept only if
  // everything fits (peak memory: the model, not the model plus its blob).
  blob::BlobLayout layout;
  AtomicFile blob_file(o.output);
  const std::string sha = to_hex(blob::write_blob(model, bo, [&](const uint8_t* d, uint64_t n) { blob_file.write(d, n); }, &layout));
  const uint64_t blob_bytes = layout.file_bytes;

  DeviceFigures figures;
  figures.flash_bytes = (blob_bytes + sector - 1) / sector * sector;
  if (ram) {
    // Planned for the golden inputs when there are some, else the declared shapes.
    const auto feeds = samples.empty() ? declared_shape_feeds(model) : samples.at(0);
    figures.ram_bytes = activation_ram(model, feeds);
    figures.ram_shapes = shapes_of(feeds);
  }
  const auto problems = over_budget(figures, flash, ram);

  firmware::BlobFacts facts;
  facts.symbol = o.symbol.empty() ? firmware::c_identifier(bo.model_name) : o.symbol;
  if (facts.symbol != firmware::c_identifier(facts.symbol)) throw_usage("--symbol '" + o.symbol + "' is not a C identifier");
  facts.size = blob_bytes;
  facts.padded_size = figures.flash_bytes;
  facts.alignment = o.alignment;
  facts.sector = sector;
  facts.sha256_hex = sha;
  facts.model_name = bo.model_name;
  facts.model_version = bo.model_version;

  // Every output is written only once everything fits; each atomically.
  std::vector<std::pair<std::string, std::string>> files;
  if (problems.empty()) {
    const fs::path out(o.output);
    auto beside = [&](const std::string& suffix) { return (out.parent_path() / (out.stem().string() + suffix)).string(); };
    if (emit.count("bin")) blob_file.write(std::string(figures.flash_bytes - blob_bytes, '\xff'));
    blob_file.commit();
    files.emplace_back(emit.count("bin") ? "bin" : "blob", o.output);
    // The header and the OTA package hold the blob itself: read back, mapped.
    std::shared_ptr<const MappedFile> written;
    std::span<const uint8_t> bytes;
    if (emit.count("c-header") || emit.count("ota")) {
      written = MappedFile::open(o.output);
      bytes = {written->data(), blob_bytes};
    }
    if (emit.count("c-header")) {
      const std::string path = beside(".h");
      write_file_atomically(path, firmware::c_header(bytes, facts, o.section));
      files.emplace_back("c-header", path);
    }
    if (emit.count("ld")) {
      if (o.section.empty()) throw_usage("--emit ld needs a --section for the array");
      const std::string path = beside(".ld");
      write_file_atomically(path, firmware::linker_fragment(facts, o.section, o.ld_region));
      files.emplace_back("ld", path);
    }
    if (emit.count("ota")) {
      ota::PackageOptions po{bo.model_name, bo.model_version, o.sign_key};
      const auto package = ota::build_package(bytes, po);
      const std::string path = beside(".ota");
      AtomicFile f(path);
      f.write(package.data(), package.size());
      f.commit();
      files.emplace_back("ota", path);
    }
    if (emit.count("partition")) {
      const std::string csv = beside(".partitions.csv"), manifest = beside(".manifest.json");
      files.emplace_back("partition", csv);
      files.emplace_back("manifest", manifest);
      write_file_atomically(csv, firmware::partition_csv(facts, o.partition_name, offset));
      write_file_atomically(manifest, firmware::manifest_json(facts, o.partition_name, offset, files));
    }
  }

  nlohmann::ordered_json sections = nlohmann::ordered_json::object();
  for (const auto& [name, size] : layout.section_bytes) sections[name] = size;
  nlohmann::ordered_json files_json = nlohmann::ordered_json::object();
  for (const auto& [kind, path] : files) files_json[kind] = path;
  nlohmann::ordered_json doc = {{"model", o.model},
                                {"blob_bytes", blob_bytes},
                                {"flash_bytes", figures.flash_bytes},
                                {"weight_bytes", layout.weight_bytes},
                                {"padding_bytes", layout.padding_bytes},
                                {"alignment", o.alignment},
                                {"sections", sections},
                                {"sha256", sha},
                                {"tensors", model.graph.initializers.size()},
                                {"simplified", simplified.lines()},
                                {"nodes", model.graph.nodes.size()},
                                {"sparse_tensors", sparse.tensors},
                                {"sparse_bytes_saved", sparse.bytes_before - sparse.bytes_after},
                                {"golden_samples", bo.golden ? bo.golden->inputs.size() : 0},
                                {"fits", problems.empty()},
                                {"problems", problems},
                                {"files", files_json}};
  if (figures.ram_bytes) doc["ram_bytes"] = *figures.ram_bytes;
  if (!problems.empty()) {
    global.exit_code = 1;
    if (!global.quiet)
      for (const auto& p : problems) std::cerr << "slmopt: " << o.model << ": does not fit the device: " << p << "\n";
  }
  if (global.json) return print_json(doc);
  if (global.quiet) return;
  std::cout << "blob       " << human_bytes(blob_bytes) << " (" << with_thousands(static_cast<int64_t>(blob_bytes))
            << " bytes; weights " << human_bytes(layout.weight_bytes) << ", padding " << human_bytes(layout.padding_bytes)
            << " at --align " << o.alignment << ")\n";
  if (simplified.changed())
    std::cout << "graph      " << simplified.nodes_before << " -> " << simplified.nodes_after
              << " nodes (constants and shapes folded, no-ops removed; --no-simplify keeps the graph as it is)\n";
  if (sparse.tensors)
    std::cout << "sparse     " << sparse.tensors << " pruned weight(s) stored sparse: " << human_bytes(sparse.bytes_before)
              << " -> " << human_bytes(sparse.bytes_after) << " (--dense keeps them dense)\n";
  std::cout << "flash      " << human_bytes(figures.flash_bytes) << " in " << human_bytes(sector) << " sectors"
            << (flash ? " of " + human_bytes(*flash) : std::string()) << "\n";
  if (figures.ram_bytes)
    std::cout << "RAM        " << human_bytes(*figures.ram_bytes) << " of " << human_bytes(*ram) << " (activations, inputs and kernel scratch for "
              << figures.ram_shapes << ")\n";
  std::cout << "sha256     " << sha << "\n";
  for (const auto& [kind, path] : files) std::cout << kind << std::string(11 - std::min<size_t>(10, kind.size()), ' ') << path << "\n";
}

}  // namespace

void setup_pack(CLI::App& app, GlobalOptions& global) {
  auto o = std::make_shared<PackOptions>();
  auto* cmd = app.add_subcommand("pack", "Pack a model into a flat, aligned blob for flash, with firmware outputs");
  cmd->add_option("model", o->model, "Model to pack (.slm, .onnx, .safetensors)")->required();
  cmd->add_option("-o,--output", o->output, "The blob (model.bin); other outputs go beside it")->required();
  cmd->add_option("--align", o->alignment, "Alignment of every weight array in bytes (power of two, 8..65536)")->capture_default_str();
  cmd->add_option("--emit", o->emit, "Outputs: bin (padded to --sector), c-header, partition, ld, ota")->capture_default_str();
  cmd->add_option("--sector", o->sector, "Flash erase size the blob and partition are rounded to")->capture_default_str();
  cmd->add_option("--name", o->name, "Model name in the metadata (default: the input's file name)");
  cmd->add_option("--model-version", o->version, "Model version in the metadata");
  cmd->add_option("--symbol", o->symbol, "C array name in the header (default: from the model name)");
  cmd->add_option("--section", o->section, "Linker section of the array (\"\" for none)")->capture_default_str();
  cmd->add_option("--ld-region", o->ld_region, "MEMORY region for the ld fragment (default: after .rodata)");
  cmd->add_option("--partition-name", o->partition_name, "Partition label")->capture_default_str();
  cmd->add_option("--partition-offset", o->partition_offset, "Partition offset (default: let the tool place it)");
  cmd->add_option("--flash", o->flash, "Flash available for the model, e.g. 4MiB: fail when the blob does not fit");
  cmd->add_option("--ram", o->ram, "RAM available for activations, e.g. 512KiB: fail when they do not fit");
  cmd->add_option("--golden", o->golden.dir, "Samples whose outputs the blob stores for its self-test (slmopt verify --run)");
  cmd->add_option("--golden-random", o->golden.random, "Or that many random samples of the declared input shapes");
  cmd->add_option("--golden-seed", o->golden.seed, "Seed of --golden-random");
  cmd->add_option("--golden-count", o->golden_count, "At most this many samples")->capture_default_str();
  cmd->add_option("--golden-atol", o->golden_atol, "Absolute tolerance for float outputs on the device")->capture_default_str();
  cmd->add_option("--golden-rtol", o->golden_rtol, "Relative tolerance for float outputs on the device")->capture_default_str();
  cmd->add_option("--sign", o->sign_key, "Ed25519 private key (PEM) that signs the OTA package");
  cmd->add_flag("--no-simplify", o->no_simplify, "Pack the graph as it is (default: constants and shapes folded, no-ops and dead nodes removed, exactly)");
  cmd->add_flag("--dense", o->dense, "Keep pruned float weights dense (default: stored sparse where that is smaller)");
  cmd->callback([o, &global] { run_pack(*o, global); });
}

}  // namespace slmopt::cli
