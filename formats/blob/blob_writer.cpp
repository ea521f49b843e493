#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "blob/blob_io.hpp"
#include "blob/crc32c.hpp"
#include "blob/slmblob.h"
#include "common/sha256.hpp"
#include "core/checked.hpp"
#include "core/quant_tensor.hpp"
#include "core/version.hpp"
#include "onnx/onnx_io.hpp"
#include "quant/quantize_weight.hpp"
#include "quant/sparse.hpp"

namespace slmopt::blob {
namespace {

constexpr uint8_t kMagic[8] = {'S', 'L', 'M', 'B', 'L', 'O', 'B', 0x1A};
constexpr uint64_t kSectionAlign = 64;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

void put_u16(uint8_t* p, uint64_t v) {
  if (v > 0xFFFF) throw_usage("blob field overflows 16 bits (" + std::to_string(v) + ")");
  for (int i = 0; i < 2; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u32(uint8_t* p, uint64_t v) {
  if (v > 0xFFFFFFFFu) throw_usage("blob field overflows 32 bits (" + std::to_string(v) + ")");
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_f32(uint8_t* p, float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  put_u32(p, u);
}

// Names, each stored once and NUL-terminated.
class StringTable {
 public:
  std::pair<uint64_t, uint64_t> add(const std::string& s) {
    if (s.find('\0') != std::string::npos) throw_usage("name '" + s + "' holds a NUL byte");
    auto [it, fresh] = offsets_.try_emplace(s, bytes_.size());
    if (fresh) bytes_.insert(bytes_.end(), s.begin(), s.end()), bytes_.push_back('\0');
    return {it->second, s.size()};
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::map<std::string, uint64_t> offsets_;
  std::string bytes_;
};

void put_string(uint8_t* p, StringTable& strings, const std::string& s) {
  auto [offset, length] = strings.add(s);
  put_u32(p, offset);
  put_u32(p + 4, length);
}

// One stored array of the weights section.
struct PartRef {
  std::string name;
  uint32_t bits;
  uint64_t count;
  const uint8_t* data;
  uint64_t size;
  uint64_t offset = 0;  // in the weights section
};

std::vector<PartRef> parts_of(const NamedTensor& init) {
  const Tensor& t = init.tensor;
  if (const QuantTensor* q = t.quant()) {
    std::vector<PartRef> parts;
    for (const auto& p : q->parts)
      parts.push_back({p.name, static_cast<uint32_t>(p.bits), static_cast<uint64_t>(p.count), p.bytes.data(), p.bytes.size()});
    return parts;
  }
  if (t.dtype() == DType::String) throw_usage("string initializer '" + init.name + "' cannot be stored in a blob");
  return {{"data", static_cast<uint32_t>(8 * dtype_size(t.dtype())), static_cast<uint64_t>(t.numel()), t.bytes(), t.nbytes()}};
}

// Calls fn on zero bytes, `n` of them in all, a bounded buffer at a time.
template <class Fn>
void for_each_zero_run(uint64_t n, Fn&& fn) {
  static const uint8_t zeros[4096] = {};
  for (uint64_t left = n; left > 0;) {
    const uint64_t run = std::min<uint64_t>(left, sizeof zeros);
    fn(zeros, run);
    left -= run;
  }
}

// Calls fn on the weights section's bytes in file order (`size` of them):
// each part at its offset, zeros between and after.
template <class Fn>
void for_each_weights_piece(const std::vector<std::vector<PartRef>>& parts, uint64_t size, Fn&& fn) {
  uint64_t written = 0;
  for (const auto& tensor_parts : parts)
    for (const auto& p : tensor_parts) {
      for_each_zero_run(p.offset - written, fn);
      fn(p.data, p.size);
      written = p.offset + p.size;
    }
  for_each_zero_run(size - written, fn);
}

uint64_t count_zeros(const Tensor& t) {
  if (t.dtype() != DType::F32) return 0;
  uint64_t zeros = 0;
  auto count = [&](const float* v, int64_t n) {
    for (int64_t i = 0; i < n; ++i) zeros += v[i] == 0.0f;
  };
  const QuantTensor* q = t.quant();
  if (!q) {
    count(t.data<float>(), t.numel());
    return zeros;
  }
  // A block of rows at a time: a large quantized weight is never held as floats.
  quant::RowDecoder decoder(*q);
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, q->cols));
  std::vector<float> values(static_cast<size_t>(block * q->cols));
  for (int64_t r0 = 0; r0 < q->rows; r0 += block) {
    const int64_t r1 = std::min(q->rows, r0 + block);
    decoder.decode(r0, r1, values.data());
    count(values.data(), (r1 - r0) * q->cols);
  }
  return zeros;
}

std::string metadata_json(const Model& model, const BlobOptions& o) {
  nlohmann::ordered_json passes = nlohmann::ordered_json::array();
  for (const auto& p : model.provenance) passes.push_back({{"pass", p.pass}, {"options", p.options}});
  nlohmann::ordered_json docs = nlohmann::ordered_json::object();
  for (const auto& init : model.graph.initializers)
    if (!init.doc.empty()) docs[init.name] = init.doc;
  nlohmann::ordered_json meta = {{"format", "slmopt-blob"},
                                 {"producer", std::string("slmopt ") + kVersion},
                                 {"model", {{"name", o.model_name}, {"version", o.model_version}, {"source_sha256", o.source_sha256}}},
                                 {"alignment", o.alignment},
                                 {"passes", passes}};
  if (!docs.empty()) meta["tensor_docs"] = docs;
  return meta.dump();
}

struct Section {
  uint32_t kind;
  const char* name;
  uint64_t size = 0, offset = 0;
};

}  // namespace

void check_alignment(uint64_t alignment) {
  if (alignment < 8 || alignment > 65536 || (alignment & (alignment - 1)) != 0)
    throw_usage("--align must be a power of two from 8 to 65536, not " + std::to_string(alignment));
}

Sha256 write_blob(const Model& model, const BlobOptions& o, const BlobSink& sink, BlobLayout* layout) {
  check_alignment(o.alignment);
  const auto& inits = model.graph.initializers;

  // Weights: every part at an aligned offset of its own.
  std::vector<std::vector<PartRef>> parts(inits.size());
  uint64_t weights_size = 0, weight_bytes = 0, part_count = 0, dim_count = 0;
  bool any_sparse = false;
  for (size_t i = 0; i < inits.size(); ++i) {
    if (inits[i].tensor.shape().size() > SLMBLOB_MAX_DIMS)
      throw_usage("tensor '" + inits[i].name + "' has rank " + std::to_string(inits[i].tensor.shape().size()) +
                  "; a blob holds at most " + std::to_string(SLMBLOB_MAX_DIMS) + " dimensions");
    parts[i] = parts_of(inits[i]);
    for (auto& p : parts[i]) {
      p.offset = align_up(weights_size, o.alignment);
      weights_size = p.offset + p.size;
      weight_bytes += p.size;
    }
    part_count += parts[i].size();
    dim_count += inits[i].tensor.shape().size();
  }

  std::string graph_bytes;
  {
    Model structure = model;
    structure.graph.initializers.clear();
    if (!onnx_format::model_to_proto(structure).SerializeToString(&graph_bytes)) throw_internal("cannot serialize the graph");
  }
  const std::string metadata = metadata_json(model, o);

  // Golden vectors: header, value entries, dims, then each value's data 8-aligned.
  const GoldenVectors* golden = o.golden ? &*o.golden : nullptr;
  uint64_t golden_values = 0, golden_dims = 0, golden_data = 0;
  if (golden) {
    for (size_t s = 0; s < golden->inputs.size(); ++s)
      for (const auto* set : {&golden->inputs[s], &golden->outputs[s]})
        for (const Tensor& t : *set) {
          if (t.shape().size() > SLMBLOB_MAX_DIMS) throw_usage("a golden value has more than 16 dimensions");
          ++golden_values;
          golden_dims += t.shape().size();
          golden_data = align_up(golden_data, 8) + t.nbytes();
        }
  }
  const uint64_t golden_head = golden ? align_up(32 + golden_values * SLMBLOB_GOLDEN_ENTRY_SIZE + golden_dims * 8, 8) : 0;

  // Names go in first so the string section's size is known before layout.
  StringTable strings;
  for (size_t i = 0; i < inits.size(); ++i) {
    strings.add(inits[i].name);
    strings.add(inits[i].tensor.is_quantized() ? inits[i].tensor.quant()->scheme : "");
    for (const auto& p : parts[i]) strings.add(p.name);
  }
  if (golden) {
    for (const auto& n : golden->input_names) strings.add(n);
    for (const auto& n : golden->output_names) strings.add(n);
  }

  std::vector<Section> sections;
  sections.push_back({SLMBLOB_SECTION_METADATA, "metadata", metadata.size()});
  sections.push_back({SLMBLOB_SECTION_STRINGS, "strings", strings.bytes().size()});
  sections.push_back({SLMBLOB_SECTION_TENSORS, "tensors",
                      16 + inits.size() * SLMBLOB_TENSOR_ENTRY_SIZE + part_count * SLMBLOB_PART_ENTRY_SIZE + dim_count * 8});
  sections.push_back({SLMBLOB_SECTION_GRAPH, "graph", graph_bytes.size()});
  if (golden) sections.push_back({SLMBLOB_SECTION_GOLDEN, "golden", golden_head + golden_data});
  sections.push_back({SLMBLOB_SECTION_WEIGHTS, "weights", weights_size});

  uint64_t cursor = SLMBLOB_HEADER_SIZE + sections.size() * SLMBLOB_SECTION_ENTRY_SIZE;
  for (auto& s : sections) {
    s.offset = align_up(cursor, s.kind == SLMBLOB_SECTION_WEIGHTS ? std::max<uint64_t>(kSectionAlign, o.alignment) : kSectionAlign);
    cursor = s.offset + s.size;
  }
  const uint64_t file_size = align_up(cursor, 8) + SLMBLOB_TRAILER_SIZE;
  const uint64_t weights_start = sections.back().offset;
  // Everything before the weights is built in memory (tables, metadata, graph,
  // golden vectors); the weights go to the sink part by part from the model's
  // own memory, so writing needs no second copy of them.
  std::vector<uint8_t> out(weights_start, 0);
  auto section = [&](uint32_t kind) -> Section& {
    for (auto& s : sections)
      if (s.kind == kind) return s;
    throw_internal("missing blob section");
  };

  std::memcpy(out.data() + section(SLMBLOB_SECTION_METADATA).offset, metadata.data(), metadata.size());
  std::memcpy(out.data() + section(SLMBLOB_SECTION_GRAPH).offset, graph_bytes.data(), graph_bytes.size());

  // Tensor table, part table, dims.
  {
    uint8_t* t = out.data() + section(SLMBLOB_SECTION_TENSORS).offset;
    put_u32(t, inits.size());
    put_u32(t + 4, part_count);
    put_u32(t + 8, dim_count);
    uint8_t* entry = t + 16;
    uint8_t* part_entry = entry + inits.size() * SLMBLOB_TENSOR_ENTRY_SIZE;
    uint8_t* dims = part_entry + part_count * SLMBLOB_PART_ENTRY_SIZE;
    uint64_t first_part = 0, first_dim = 0;
    for (size_t i = 0; i < inits.size(); ++i, entry += SLMBLOB_TENSOR_ENTRY_SIZE) {
      const Tensor& tensor = inits[i].tensor;
      const QuantTensor* q = tensor.quant();
      put_string(entry, strings, inits[i].name);
      put_string(entry + 8, strings, q ? q->scheme : "");
      put_u32(entry + 16, traits(tensor.dtype()).onnx_code);
      put_u16(entry + 20, tensor.shape().size());
      put_u16(entry + 22, parts[i].size());
      put_u32(entry + 24, first_dim);
      put_u32(entry + 28, first_part);
      if (q) {
        entry[32] = static_cast<uint8_t>(q->params.bits);
        entry[33] = q->params.symmetric;
        entry[34] = static_cast<uint8_t>(traits(q->params.scale_dtype).onnx_code);
        entry[35] = static_cast<uint8_t>(q->params.sub_scale_bits);
        entry[36] = q->transposed;
        put_u64(entry + 40, static_cast<uint64_t>(q->params.group));
        put_u64(entry + 48, static_cast<uint64_t>(q->params.super_block));
        put_u64(entry + 56, static_cast<uint64_t>(q->rows));
        put_u64(entry + 64, static_cast<uint64_t>(q->cols));
        if (quant::is_sparse(*q)) {
          put_u32(entry + 72, SLMBLOB_SPARSE_BITMAP);
          any_sparse = true;
        }
      }
      put_u64(entry + 80, count_zeros(tensor));
      for (int64_t d : tensor.shape()) put_u64(dims + 8 * first_dim++, static_cast<uint64_t>(d));
      for (const auto& p : parts[i]) {
        put_string(part_entry, strings, p.name);
        put_u32(part_entry + 8, p.bits);
        put_u64(part_entry + 16, p.count);
        put_u64(part_entry + 24, weights_start + p.offset);
        put_u64(part_entry + 32, p.size);
        part_entry += SLMBLOB_PART_ENTRY_SIZE;
        ++first_part;
      }
    }
  }

  if (golden) {
    const uint64_t start = section(SLMBLOB_SECTION_GOLDEN).offset;
    uint8_t* g = out.data() + start;
    put_u32(g, golden->inputs.size());
    put_u32(g + 4, golden->input_names.size());
    put_u32(g + 8, golden->output_names.size());
    put_u32(g + 12, golden_dims);
    put_f32(g + 16, golden->atol);
    put_f32(g + 20, golden->rtol);
    uint8_t* entry = g + 32;
    uint8_t* dims = entry + golden_values * SLMBLOB_GOLDEN_ENTRY_SIZE;
    uint64_t data = start + golden_head, first_dim = 0;
    for (size_t s = 0; s < golden->inputs.size(); ++s) {
      if (golden->inputs[s].size() != golden->input_names.size() || golden->outputs[s].size() != golden->output_names.size())
        throw_internal("golden sample " + std::to_string(s) + " does not match the names");
      for (int set = 0; set < 2; ++set) {
        const auto& values = set == 0 ? golden->inputs[s] : golden->outputs[s];
        const auto& names = set == 0 ? golden->input_names : golden->output_names;
        for (size_t v = 0; v < values.size(); ++v, entry += SLMBLOB_GOLDEN_ENTRY_SIZE) {
          const Tensor& t = values[v];
          if (t.is_quantized() || t.dtype() == DType::String) throw_usage("golden value '" + names[v] + "' must be a plain tensor");
          data = align_up(data, 8);
          put_string(entry, strings, names[v]);
          put_u32(entry + 8, traits(t.dtype()).onnx_code);
          put_u32(entry + 12, t.shape().size());
          put_u32(entry + 16, first_dim);
          put_u32(entry + 20, 8 * dtype_size(t.dtype()));
          put_u64(entry + 24, data);
          put_u64(entry + 32, t.nbytes());
          for (int64_t d : t.shape()) put_u64(dims + 8 * first_dim++, static_cast<uint64_t>(d));
          if (t.nbytes()) std::memcpy(out.data() + data, t.bytes(), t.nbytes());
          data += t.nbytes();
        }
      }
    }
  }
  std::memcpy(out.data() + section(SLMBLOB_SECTION_STRINGS).offset, strings.bytes().data(), strings.bytes().size());

  // Section table, header, trailer.
  uint8_t* table = out.data() + SLMBLOB_HEADER_SIZE;
  for (size_t i = 0; i < sections.size(); ++i) {
    uint8_t* e = table + i * SLMBLOB_SECTION_ENTRY_SIZE;
    const Section& s = sections[i];
    put_u32(e, s.kind);
    uint32_t crc = 0;
    if (s.kind == SLMBLOB_SECTION_WEIGHTS)  // streamed later: a pass over the parts now
      for_each_weights_piece(parts, s.size, [&](const uint8_t* data, uint64_t n) { crc = slmopt_crc32c(crc, data, n); });
    else
      crc = slmopt_crc32c(0, out.data() + s.offset, s.size);
    put_u32(e + 4, crc);
    put_u64(e + 8, s.offset);
    put_u64(e + 16, s.size);
  }
  std::memcpy(out.data(), kMagic, 8);
  put_u16(out.data() + 8, SLMBLOB_VERSION_MAJOR);
  put_u16(out.data() + 10, any_sparse ? 1 : 0);  // 1.1: bitmap-sparse tensors
  put_u32(out.data() + 12, 0x01020304u);
  put_u32(out.data() + 16, SLMBLOB_HEADER_SIZE);
  put_u32(out.data() + 20, golden ? 1u : 0u);
  put_u32(out.data() + 24, o.alignment);
  put_u32(out.data() + 28, sections.size());
  put_u64(out.data() + 32, SLMBLOB_HEADER_SIZE);
  put_u64(out.data() + 40, file_size);
  put_u32(out.data() + 48, slmopt_crc32c(0, table, sections.size() * SLMBLOB_SECTION_ENTRY_SIZE));
  put_u32(out.data() + 60, slmopt_crc32c(0, out.data(), 60));

  Sha256Stream hash;
  auto emit = [&](const uint8_t* data, uint64_t size) {
    hash.update(data, size);
    sink(data, size);
  };
  emit(out.data(), out.size());
  for_each_weights_piece(parts, file_size - SLMBLOB_TRAILER_SIZE - weights_start, emit);
  const Sha256 digest = hash.finish();
  sink(digest.data(), digest.size());

  if (layout) {
    layout->file_bytes = file_size;
    layout->weight_bytes = weight_bytes;
    uint64_t content = SLMBLOB_HEADER_SIZE + sections.size() * SLMBLOB_SECTION_ENTRY_SIZE + SLMBLOB_TRAILER_SIZE + weight_bytes;
    layout->section_bytes.clear();
    for (const auto& s : sections) {
      if (s.kind != SLMBLOB_SECTION_WEIGHTS) content += s.size;
      layout->section_bytes.emplace_back(s.name, s.size);
    }
    layout->padding_bytes = file_size - content;
  }
  return digest;
}

std::vector<uint8_t> build_blob(const Model& model, const BlobOptions& o, BlobLayout* layout) {
  std::vector<uint8_t> out;
  write_blob(model, o, [&](const uint8_t* data, uint64_t size) { out.insert(out.end(), data, data + size); }, layout);
  return out;
}

uint64_t blob_size(const Model& model, const BlobOptions& o) {
  BlobLayout layout;
  write_blob(model, o, [](const uint8_t*, uint64_t) {}, &layout);
  return layout.file_bytes;
}

}  // namespace slmopt::blob
