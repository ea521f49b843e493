#include "llama2c/llama2c_io.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>

#include "core/atomic_file.hpp"
#include "core/buffer.hpp"
#include "core/checked.hpp"
#include "core/error.hpp"
#include "llm/decoder_graph.hpp"

namespace slmopt::llama2c {
namespace {

constexpr uint32_t kMagic = 0x616b3432;  // "ak42" read as little-endian uint32
constexpr size_t kLegacyHeader = 7 * 4;
constexpr size_t kVersion1Header = 256;

struct Sizes {
  int32_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
  bool shared_classifier = true;
  int version = 0;
};

int32_t read_i32(const uint8_t* p) {
  int32_t v = 0;
  std::memcpy(&v, p, 4);
  return v;
}

Sizes parse_header(const MappedFile& file) {
  const uint8_t* p = file.data();
  Sizes s;
  size_t at = 0;
  if (file.size() >= 8 && static_cast<uint32_t>(read_i32(p)) == kMagic) {
    s.version = read_i32(p + 4);
    if (s.version != 1)
      throw_bad_input("llama2.c checkpoint version " + std::to_string(s.version) +
                          " is not supported (supported: legacy and version 1; version 2 is int8)",
                      file.path());
    if (file.size() < kVersion1Header) throw_bad_input("llama2.c header is truncated", file.path());
    at = 8;
  } else if (file.size() < kLegacyHeader) {
    throw_bad_input("llama2.c header is truncated", file.path());
  }
  int32_t* fields[] = {&s.dim, &s.hidden_dim, &s.n_layers, &s.n_heads, &s.n_kv_heads, &s.vocab_size, &s.seq_len};
  for (auto* f : fields) {
    *f = read_i32(p + at);
    at += 4;
  }
  if (s.version == 1) {
    s.shared_classifier = p[at] != 0;
  } else {
    s.shared_classifier = s.vocab_size > 0;
    if (s.vocab_size < 0 && s.vocab_size != INT32_MIN) s.vocab_size = -s.vocab_size;  // INT32_MIN: refused below
  }
  const char* names[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  for (size_t i = 0; i < 7; ++i)
    if (*fields[i] <= 0 || *fields[i] > (1 << 24))
      throw_bad_input(std::string("llama2.c header field ") + names[i] + " is " + std::to_string(*fields[i]) +
                          " (expected 1 to 16777216)",
                      file.path());
  if (s.dim % s.n_heads != 0 || s.n_heads % s.n_kv_heads != 0 || (s.dim / s.n_heads) % 2 != 0)
    throw_bad_input("llama2.c header: dim " + std::to_string(s.dim) + ", " + std::to_string(s.n_heads) + " heads and " +
                        std::to_string(s.n_kv_heads) + " key/value heads do not divide into even head sizes",
                    file.path());
  return s;
}

ArchConfig config_of(const Sizes& s) {
  ArchConfig c;
  c.family = ArchFamily::Llama;
  c.model_type = "llama";
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = s.vocab_size;
  c.hidden_size = s.dim;
  c.intermediate_size = s.hidden_dim;
  c.num_layers = s.n_layers;
  c.num_heads = s.n_heads;
  c.num_kv_heads = s.n_kv_heads;
  c.head_dim = s.dim / s.n_heads;
  c.max_position_embeddings = s.seq_len;
  c.norm_eps = 1e-5;  // fixed in llama2.c's run.c
  c.rope_theta = 10000.0;
  c.hidden_act = "silu";
  c.tie_word_embeddings = s.shared_classifier;
  c.torch_dtype = "float32";
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

// One tensor of the file: its name and its shape; layer tensors repeat per layer.
struct Entry {
  std::string name;  // "{}" stands for the layer index
  std::vector<int64_t> shape;
  bool per_layer = false;
};

std::vector<Entry> layout(const Sizes& s) {
  const int64_t d = s.dim, h = s.hidden_dim, v = s.vocab_size, kv = int64_t{s.n_kv_heads} * (s.dim / s.n_heads);
  const Entry embed{"model.embed_tokens.weight", {v, d}}, att_norm{"input_layernorm.weight", {d}, true},
      ffn_norm{"post_attention_layernorm.weight", {d}, true}, final_norm{"model.norm.weight", {d}},
      wq{"self_attn.q_proj.weight", {d, d}, true}, wk{"self_attn.k_proj.weight", {kv, d}, true},
      wv{"self_attn.v_proj.weight", {kv, d}, true}, wo{"self_attn.o_proj.weight", {d, d}, true},
      w1{"mlp.gate_proj.weight", {h, d}, true}, w2{"mlp.down_proj.weight", {d, h}, true},
      w3{"mlp.up_proj.weight", {h, d}, true}, freqs{"", {2, s.seq_len, (s.dim / s.n_heads) / 2}},
      classifier{"lm_head.weight", {v, d}};
  std::vector<Entry> e;
  if (s.version == 0)
    e = {embed, att_norm, wq, wk, wv, wo, ffn_norm, w1, w2, w3, final_norm, freqs};
  else
    e = {att_norm, ffn_norm, final_norm, embed, wq, wk, wv, wo, w1, w2, w3};
  if (!s.shared_classifier) e.push_back(classifier);
  return e;
}

int64_t layout_floats(const Sizes& s) {
  int64_t n = 0;
  for (const auto& e : layout(s))
    n = checked_add(n, checked_mul(checked_numel(e.shape), e.per_layer ? s.n_layers : 1, "tensor size"), "file size");
  return n;
}

size_t header_bytes(const Sizes& s) { return s.version == 1 ? kVersion1Header : kLegacyHeader; }

void check_size(const MappedFile& file, const Sizes& s) {
  const int64_t floats = layout_floats(s);
  const uint64_t expected = static_cast<uint64_t>(checked_add(checked_mul(floats, 4, "file size"),
                                                              static_cast<int64_t>(header_bytes(s)), "file size"));
  if (file.size() != expected)
    throw_bad_input("llama2.c checkpoint is " + std::to_string(file.size()) + " bytes, its header implies " +
                        std::to_string(expected),
                    file.path());
}

// llama2.c keeps the two numbers a rotary pair turns together side by side
// (0,1), (2,3), ...; Hugging Face pairs i with i + head_size/2. Rows of each head
// are reordered [pairs][2] -> [2][pairs] (the inverse with to_hf false).
Tensor permute_rotary_rows(const Tensor& w, int64_t heads, bool to_hf) {
  const int64_t rows = w.shape()[0], cols = w.shape()[1], half = rows / heads / 2;
  Tensor out(DType::F32, w.shape());
  const float* src = w.data<float>();
  float* dst = out.mutable_data<float>();
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t interleaved = h * 2 * half + i * 2 + j, halves = h * 2 * half + j * half + i;
        const int64_t from = to_hf ? interleaved : halves, to = to_hf ? halves : interleaved;
        std::memcpy(dst + to * cols, src + from * cols, static_cast<size_t>(cols) * 4);
      }
  return out;
}

}  // namespace

Checkpoint read_checkpoint(const std::string& path) {
  auto file = MappedFile::open(path);
  const Sizes s = parse_header(*file);
  check_size(*file, s);
  Checkpoint cp;
  cp.config = config_of(s);
  cp.version = s.version;
  size_t offset = header_bytes(s);
  for (const auto& e : layout(s)) {
    const int64_t count = e.per_layer ? s.n_layers : 1;
    const size_t bytes = static_cast<size_t>(checked_numel(e.shape)) * 4;
    for (int64_t layer = 0; layer < count; ++layer, offset += bytes) {
      if (e.name.empty()) continue;  // precomputed rotary tables: the graph computes its own
      std::string name = e.per_layer ? "model.layers." + std::to_string(layer) + "." + e.name : e.name;
      Tensor t = Tensor::from_buffer(DType::F32, e.shape, Buffer::view(file, offset, bytes));
      if (e.name == "self_attn.q_proj.weight") t = permute_rotary_rows(t, s.n_heads, true);
      if (e.name == "self_attn.k_proj.weight") t = permute_rotary_rows(t, s.n_kv_heads, true);
      cp.tensors.push_back(NamedTensor{std::move(name), std::move(t), {}});
    }
  }
  return cp;
}

bool looks_like_checkpoint(const std::string& path) {
  try {
    auto file = MappedFile::open(path);
    const Sizes s = parse_header(*file);
    check_size(*file, s);
    return true;
  } catch (const Error&) {
    return false;
  }
}

Model read_model(const std::string& path) {
  Checkpoint cp = read_checkpoint(path);
  Model m = llm::build_decoder(cp.config, std::move(cp.tensors), path);
  m.source_format = "llama2c";
  return m;
}

void write_checkpoint(const Model& model, const std::string& path) {
  const auto info = llm::read_decoder_info(model);
  if (!info || info->family != "llama")
    throw_usage("llama2.c holds Llama decoders; '" + path + "' would need one built from a Llama checkpoint");
  if (info->rope_theta != 10000.0 || info->norm_eps != 1e-5)
    throw_usage("llama2.c fixes rope_theta 10000 and norm eps 1e-5; this model has " + std::to_string(info->rope_theta) +
                " and " + std::to_string(info->norm_eps));
  auto tensor = [&](const std::string& name) -> const Tensor& {
    const NamedTensor* t = model.graph.find_initializer(name);
    if (!t) throw_usage("the model has no tensor '" + name + "' for llama2.c");
    if (t->tensor.is_quantized() || t->tensor.dtype() != DType::F32)
      throw_usage("tensor '" + name + "' is not f32: llama2.c checkpoints hold f32 weights (use pack for quantized models)");
    return t->tensor;
  };
  const Tensor& embed = tensor("model.embed_tokens.weight");
  const Tensor& q0 = tensor("model.layers.0.self_attn.q_proj.weight");
  const Tensor& gate0 = tensor("model.layers.0.mlp.gate_proj.weight");
  Sizes s;
  s.version = 1;
  s.dim = static_cast<int32_t>(embed.shape()[1]);
  s.vocab_size = static_cast<int32_t>(embed.shape()[0]);
  s.hidden_dim = static_cast<int32_t>(gate0.shape()[0]);
  s.n_layers = static_cast<int32_t>(info->num_layers);
  s.n_heads = static_cast<int32_t>(q0.shape()[0] / info->head_dim);
  s.n_kv_heads = static_cast<int32_t>(info->num_kv_heads);
  s.seq_len = static_cast<int32_t>(info->context);
  s.shared_classifier = model.graph.find_initializer("lm_head.weight") == nullptr;
  if (int64_t{s.n_heads} * info->head_dim != s.dim)
    throw_usage("llama2.c needs heads x head size = width; this model has " + std::to_string(s.n_heads) + " x " +
                std::to_string(info->head_dim) + " != " + std::to_string(s.dim));

  // What llama2.c cannot express must not be dropped silently: extra tensors
  // (biases) or rotary frequencies other than theta 10000's.
  size_t written = 0;
  for (const auto& e : layout(s)) written += e.name.empty() ? 0 : e.per_layer ? static_cast<size_t>(s.n_layers) : 1;
  size_t checkpoint_tensors = 0;
  for (const auto& init : model.graph.initializers)
    checkpoint_tensors += (init.name.starts_with("model.") || init.name.starts_with("lm_head.")) &&
                          (init.name.ends_with(".weight") || init.name.ends_with(".bias"));
  if (checkpoint_tensors != written)
    throw_usage("the model has " + std::to_string(checkpoint_tensors) + " weight tensors; llama2.c holds " +
                std::to_string(written) + " (biases or other extras cannot be written)");
  if (const NamedTensor* inv = model.graph.find_initializer("rotary/inv_freq")) {
    const float* f = inv->tensor.data<float>();
    for (int64_t i = 0; i < inv->tensor.numel(); ++i)
      if (f[i] != static_cast<float>(1.0 / std::pow(10000.0, static_cast<double>(2 * i) / static_cast<double>(info->head_dim))))
        throw_usage("the model's rotary frequencies are scaled; llama2.c cannot hold rope_scaling");
  }

  std::string bytes(kVersion1Header, '\0');
  const int32_t header[] = {static_cast<int32_t>(kMagic), 1, s.dim, s.hidden_dim, s.n_layers, s.n_heads, s.n_kv_heads,
                            s.vocab_size, s.seq_len};
  std::memcpy(bytes.data(), header, sizeof header);
  bytes[sizeof header] = s.shared_classifier ? 1 : 0;
  auto append = [&](const Tensor& t, const std::vector<int64_t>& shape, const std::string& name) {
    if (t.shape() != shape) throw_usage("tensor '" + name + "' does not have the shape llama2.c expects");
    bytes.append(reinterpret_cast<const char*>(t.bytes()), t.nbytes());
  };
  for (const auto& e : layout(s)) {
    const int64_t count = e.per_layer ? s.n_layers : 1;
    for (int64_t layer = 0; layer < count; ++layer) {
      const std::string name = e.per_layer ? "model.layers." + std::to_string(layer) + "." + e.name : e.name;
      const Tensor& t = tensor(name);
      if (e.name == "self_attn.q_proj.weight")
        append(permute_rotary_rows(t, s.n_heads, false), e.shape, name);
      else if (e.name == "self_attn.k_proj.weight")
        append(permute_rotary_rows(t, s.n_kv_heads, false), e.shape, name);
      else
        append(t, e.shape, name);
    }
  }
  write_file_atomically(path, bytes);
}

}  // namespace slmopt::llama2c
