#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_set>
#include <vector>

#include "common/json_integer.hpp"
#include "common/provenance_json.hpp"
#include "core/atomic_file.hpp"
#include "core/checked.hpp"
#include "core/file_guard.hpp"
#include "safetensors/safetensors_io.hpp"

namespace slmopt::safetensors {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A JSON object naming a key twice is ambiguous (nlohmann keeps the last,
// other readers the first), at any depth: a header's tensors, an index's
// weight_map entries; a classic smuggling trick. The keys are checked by a SAX
// pass of their own: nlohmann's parser callback rescans an object's members
// each time one of them ends, quadratic in a header of many tensors.
class DuplicateKeyFinder : public nlohmann::json_sax<json> {
 public:
  std::string duplicate;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    open_objects_.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (!open_objects_.back().insert(k).second) {
      duplicate = k;
      return false;  // stops the pass
    }
    return true;
  }
  bool end_object() override {
    open_objects_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  std::vector<std::unordered_set<std::string>> open_objects_;  // the keys of each object being parsed
};

json parse_rejecting_duplicates(std::string_view text, const std::string& what) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw_bad_input(what + " is not valid JSON");
  DuplicateKeyFinder finder;
  json::sax_parse(text.begin(), text.end(), &finder);
  if (!finder.duplicate.empty()) throw_bad_input(what + " names '" + finder.duplicate + "' twice");
  return j;
}

Entry parse_entry(const std::string& name, const json& v) {
  return with_context("tensor '" + name + "'", [&] {
    if (!v.is_object()) throw_bad_input("header entry is not an object");
    Entry e;
    e.name = name;
    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) throw_bad_input("missing string 'dtype'");
    auto dtype = dtype_from_safetensors(dt->get<std::string>());
    if (!dtype) throw_bad_input("unsupported dtype '" + dt->get<std::string>() + "'");
    e.dtype = *dtype;
    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) throw_bad_input("missing array 'shape'");
    if (sh->size() > 64) throw_bad_input("rank " + std::to_string(sh->size()) + " is too large");
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) throw_bad_input("shape entries must be non-negative integers");
      uint64_t dim = json_integer<uint64_t>(d);
      if (dim > static_cast<uint64_t>(INT64_MAX)) throw_bad_input("dimension overflows int64");
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      throw_bad_input("'data_offsets' must be two non-negative integers");
    e.begin = json_integer<uint64_t>((*off)[0]);
    e.end = json_integer<uint64_t>((*off)[1]);
    if (e.end < e.begin) throw_bad_input("data_offsets end before they begin");
    int64_t bytes = checked_mul(checked_numel(e.shape), dtype_size(e.dtype), "tensor byte size");
    if (e.end - e.begin != static_cast<uint64_t>(bytes))
      throw_bad_input("data_offsets span " + std::to_string(e.end - e.begin) + " bytes, shape " +
                      shape_to_string(e.shape) + " of " + dtype_name(e.dtype) + " needs " +
                      std::to_string(bytes));
    return e;
  });
}

}  // namespace

Contents read_file(const std::string& path) {
  try {
    auto file = MappedFile::open(path);
    const uint64_t size = file->size();
    if (size < 8) throw_bad_input("file is too short for a safetensors header (" +
                                  std::to_string(size) + " bytes)");
    const uint64_t header_len = read_u64_le(file->data());
    if (header_len > kMaxHeaderBytes)
      throw_bad_input("header length " + std::to_string(header_len) + " exceeds the " +
                      std::to_string(kMaxHeaderBytes) + "-byte limit");
    if (header_len > size - 8)
      throw_bad_input("header length " + std::to_string(header_len) + " runs past the end of the file (" +
                      std::to_string(size) + " bytes)");
    if (header_len < 2 || file->data()[8] != '{')
      throw_bad_input("header does not start with a JSON object");
    std::string_view text(reinterpret_cast<const char*>(file->data() + 8), header_len);
    json header = parse_rejecting_duplicates(text, "header");
    if (!header.is_object()) throw_bad_input("header is not a JSON object");

    Contents out;
    std::vector<Entry> entries;
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") {
        if (!it->is_object()) throw_bad_input("__metadata__ is not an object");
        for (auto m = it->begin(); m != it->end(); ++m) {
          if (!m->is_string()) throw_bad_input("__metadata__ value '" + m.key() + "' is not a string");
          out.metadata.emplace_back(m.key(), m->get<std::string>());
        }
        continue;
      }
      entries.push_back(parse_entry(it.key(), *it));
    }
    // Fully indexed, no holes, no overlaps: sorted by begin, each starts where
    // the previous ended and the last ends at the end of the file.
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    const uint64_t data_start = 8 + header_len;
    const uint64_t data_size = size - data_start;
    uint64_t expected = 0;
    for (const auto& e : entries) {
      if (e.begin != expected)
        throw_bad_input("tensor '" + e.name + "' starts at byte " + std::to_string(e.begin) +
                        " of the data buffer, expected " + std::to_string(expected) +
                        (e.begin > expected ? " (hole)" : " (overlap)"));
      if (e.end > data_size)
        throw_bad_input("tensor '" + e.name + "' data [" + std::to_string(e.begin) + ", " +
                        std::to_string(e.end) + ") runs past the end of the data buffer (" +
                        std::to_string(data_size) + " bytes)");
      expected = e.end;
    }
    if (expected != data_size)
      throw_bad_input("data buffer holds " + std::to_string(data_size) + " bytes, tensors cover " +
                      std::to_string(expected));
    for (auto& e : entries) {
      auto view = Buffer::view(file, data_start + e.begin, e.end - e.begin);
      out.tensors.push_back({e.name, Tensor::from_buffer(e.dtype, std::move(e.shape), view), {}});
    }
    return out;
  } catch (Error& e) {
    e.set_file_if_empty(path);
    throw;
  }
}

namespace {

Contents read_index_unchecked(const std::string& index_path) {
  fs::path dir = fs::path(index_path).parent_path();
  std::string text = read_small_file(index_path, 64u << 20);
  json index = parse_rejecting_duplicates(text, "index");
  if (!index.is_object()) throw_bad_input("index is not a JSON object");
  auto fail = [&](const std::string& msg) { throw_bad_input(msg, index_path); };
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) fail("missing object 'weight_map'");
  std::vector<std::string> shards;  // in order of first mention
  std::map<std::string, std::string> shard_of;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string()) fail("weight_map entry '" + it.key() + "' is not a string");
    std::string shard = it->get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos ||
        shard.find('\\') != std::string::npos || shard == "." || shard == "..")
      fail("shard name '" + shard + "' must be a plain file name in the index's folder");
    if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
    shard_of[it.key()] = shard;
  }
  std::sort(shards.begin(), shards.end());
  Contents out;
  std::set<std::string> seen;
  for (const auto& shard : shards) {
    std::string shard_path;
    try {
      shard_path = path_inside(dir.string(), shard, "shard");
    } catch (Error& e) {
      e.set_file_if_empty(index_path);
      throw;
    }
    Contents part = read_file(shard_path);
    for (auto& t : part.tensors) {
      auto it = shard_of.find(t.name);
      if (it == shard_of.end())
        throw_bad_input("tensor '" + t.name + "' is not listed in the index", (dir / shard).string());
      if (it->second != shard)
        throw_bad_input("tensor '" + t.name + "' is listed in shard '" + it->second + "'",
                        (dir / shard).string());
      seen.insert(t.name);
      out.tensors.push_back(std::move(t));
    }
    if (out.metadata.empty()) out.metadata = std::move(part.metadata);
  }
  for (const auto& [name, shard] : shard_of)
    if (!seen.count(name)) fail("tensor '" + name + "' is missing from shard '" + shard + "'");
  return out;
}

Contents read_index(const std::string& index_path) {
  try {
    return read_index_unchecked(index_path);
  } catch (Error& e) {
    e.set_file_if_empty(index_path);
    throw;
  }
}


}  // namespace

Contents read(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    fs::path dir(path);
    if (fs::exists(dir / "model.safetensors.index.json", ec))
      return read_index((dir / "model.safetensors.index.json").string());
    if (fs::exists(dir / "model.safetensors", ec)) return read_file((dir / "model.safetensors").string());
    throw_bad_input("folder holds neither model.safetensors nor model.safetensors.index.json", path);
  }
  if (path.ends_with(".index.json")) return read_index(path);
  return read_file(path);
}

Model read_model(const std::string& path) {
  Contents c = read(path);
  Model m;
  m.source_format = "safetensors";
  m.ir_version = 0;
  m.graph.name = fs::path(path).stem().string();
  for (auto& [k, v] : c.metadata) {
    if (k == kProvenanceKey) {
      try {
        m.provenance = provenance_from_json(v);
      } catch (Error& e) {
        e.set_file_if_empty(path);
        throw;
      }
    } else {
      m.metadata.emplace_back(k, v);
    }
  }
  m.graph.initializers = std::move(c.tensors);
  return m;
}

}  // namespace slmopt::safetensors
