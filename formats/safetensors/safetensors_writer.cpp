#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/provenance_json.hpp"
#include "core/atomic_file.hpp"
#include "safetensors/safetensors_io.hpp"

namespace slmopt::safetensors {
namespace fs = std::filesystem;

namespace {

// The header as the reference implementation writes it: compact JSON,
// __metadata__ first, tensors in data order, padded with spaces to 8 bytes.
std::string make_header(const std::vector<NamedTensor>& tensors,
                        const std::vector<std::pair<std::string, std::string>>& metadata) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    h["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    const char* name = traits(t.tensor.dtype()).safetensors_name;
    if (!name)
      throw_bad_input("tensor '" + t.name + "': safetensors cannot store " +
                      dtype_name(t.tensor.dtype()) + " tensors");
    if (t.name == "__metadata__" || h.contains(t.name))
      throw_bad_input("tensor name '" + t.name + "' is reserved or used twice");
    h[t.name] = {{"dtype", name},
                 {"shape", t.tensor.shape()},
                 {"data_offsets", {offset, offset + t.tensor.nbytes()}}};
    offset += t.tensor.nbytes();
  }
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace

void write_file(const std::string& path, const std::vector<NamedTensor>& tensors,
                const std::vector<std::pair<std::string, std::string>>& metadata) {
  try {
    std::string header = make_header(tensors, metadata);
    AtomicFile out(path);
    uint8_t len[8];
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
    out.write(len, 8);
    out.write(header);
    for (const auto& t : tensors)
      if (t.tensor.nbytes()) out.write(t.tensor.bytes(), t.tensor.nbytes());
    out.commit();
  } catch (Error& e) {
    e.set_file_if_empty(path);
    throw;
  }
}

int write_sharded(const std::string& dir, const std::vector<NamedTensor>& tensors,
                  const std::vector<std::pair<std::string, std::string>>& metadata,
                  uint64_t max_shard_bytes) {
  std::vector<std::vector<NamedTensor>> shards(1);
  uint64_t current = 0, total = 0;
  for (const auto& t : tensors) {
    if (current > 0 && current + t.tensor.nbytes() > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(t);
    current += t.tensor.nbytes();
    total += t.tensor.nbytes();
  }
  const int count = static_cast<int>(shards.size());
  // Sorted keys and two-space indent, as transformers writes the index.
  nlohmann::json index;
  index["metadata"]["total_size"] = total;
  index["weight_map"] = nlohmann::json::object();
  fs::create_directories(dir);
  OutputSet files;  // the shards and their index appear together, or not at all
  for (int i = 0; i < count; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", i + 1, count);
    write_file((fs::path(dir) / name).string(), shards[static_cast<size_t>(i)], metadata);
    for (const auto& t : shards[static_cast<size_t>(i)]) index["weight_map"][t.name] = name;
  }
  write_file_atomically((fs::path(dir) / "model.safetensors.index.json").string(),
                        index.dump(2) + "\n");
  files.commit();
  return count;
}

void write_model(const Model& model, const std::string& path) {
  auto metadata = model.metadata;
  if (!model.provenance.empty()) metadata.emplace_back(kProvenanceKey, provenance_to_json(model.provenance));
  if (!model.graph.nodes.empty())
    throw_bad_input("safetensors stores weights only; this model has a graph of " +
                        std::to_string(model.graph.nodes.size()) + " nodes (write .onnx instead)",
                    path);
  write_file(path, model.graph.initializers, metadata);
}

}  // namespace slmopt::safetensors
