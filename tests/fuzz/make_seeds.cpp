// slmopt_fuzz_seeds OUT_DIR: a seed corpus for every fuzz target, written by
// the project's own writers (valid files of every kind), so the fuzzers start
// from inputs that reach deep into each parser. scripts/fuzz.sh adds real
// files (ONNX's conformance models and tensors, the test tokenizers).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include <onnx/onnx_pb.h>
#include <unistd.h>
#include <zlib.h>

#include "blob/blob_io.hpp"
#include "calib/collector.hpp"
#include "calib/dataset.hpp"
#include "calib/npy.hpp"
#include "calib/stats_io.hpp"
#include "fuzz_common.hpp"
#include "hf_config/hf_config.hpp"
#include "llama2c/llama2c_io.hpp"
#include "llm/decoder_graph.hpp"
#include "onnx/onnx_io.hpp"
#include "onnx/onnx_tensor.hpp"
#include "ota/ota_package.hpp"
#include "passes/quantize.hpp"
#include "passes/sparse_storage.hpp"
#include "runtime/session.hpp"
#include "safetensors/safetensors_io.hpp"
#include "slm/slm_io.hpp"

namespace fs = std::filesystem;
using namespace slmopt;

namespace {

fs::path g_out;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(g_out / target);
  std::ofstream(g_out / target / name, std::ios::binary) << bytes;
}
std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void put_file(const std::string& target, const std::string& name, const fs::path& from) { put(target, name, slurp(from)); }

// A one-layer Llama small enough to fuzz quickly (hidden 8, vocab 16) that
// still has every node kind the decoder builder emits.
const char* kLlamaConfig = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 16,
  "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
  "num_key_value_heads": 1, "max_position_embeddings": 32, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
  "hidden_act": "silu", "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2})";
const char* kGpt2Config = R"({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 16,
  "n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 32, "layer_norm_epsilon": 1e-5,
  "activation_function": "gelu_new"})";
const char* kQwen2Config = R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 16,
  "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
  "num_key_value_heads": 1, "max_position_embeddings": 32, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
  "original_max_position_embeddings": 16}, "sliding_window": 8, "use_sliding_window": false,
  "hidden_act": "silu", "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": [2, 3]})";

Tensor values(std::vector<int64_t> shape, uint32_t seed) {
  Tensor t(DType::F32, shape);
  float* p = t.mutable_data<float>();
  uint32_t x = seed * 2654435761u + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    x = x * 1664525u + 1013904223u;
    p[i] = static_cast<float>(static_cast<int32_t>(x >> 8) % 2000) / 4000.0f;
  }
  return t;
}

std::vector<NamedTensor> llama_weights() {
  std::vector<NamedTensor> w;
  uint32_t seed = 1;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) { w.push_back({name, values(shape, seed++), {}}); };
  add("model.embed_tokens.weight", {16, 8});
  const std::string l = "model.layers.0.";
  add(l + "input_layernorm.weight", {8});
  add(l + "self_attn.q_proj.weight", {8, 8});
  add(l + "self_attn.k_proj.weight", {4, 8});
  add(l + "self_attn.v_proj.weight", {4, 8});
  add(l + "self_attn.o_proj.weight", {8, 8});
  add(l + "post_attention_layernorm.weight", {8});
  add(l + "mlp.gate_proj.weight", {16, 8});
  add(l + "mlp.up_proj.weight", {16, 8});
  add(l + "mlp.down_proj.weight", {8, 16});
  add("model.norm.weight", {8});
  add("lm_head.weight", {16, 8});
  return w;
}

std::string tensor_bytes(const std::string& path_in_tmp, const std::function<void(const std::string&)>& write) {
  const fs::path tmp = fs::temp_directory_path() / ("slmopt-seeds-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  const std::string path = (tmp / path_in_tmp).string();
  write(path);
  std::string bytes = slurp(path);
  fs::remove_all(tmp);
  return bytes;
}

// A GGUF v3 file holding only a tokenizer (what read_gguf_vocab reads).
std::string tiny_gguf() {
  std::string b = "GGUF";
  auto u32 = [&](uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); };
  auto u64 = [&](uint64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); };
  auto str = [&](const std::string& s) { u64(s.size()); b += s; };
  const std::vector<std::string> pieces = {"<unk>", "<s>", "</s>", "<0x0A>", "\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "ab"};
  u32(3);
  u64(0);  // tensors
  u64(7);  // key-value pairs
  str("tokenizer.ggml.model"), u32(8), str("llama");
  str("tokenizer.ggml.tokens"), u32(9), u32(8), u64(pieces.size());
  for (const auto& p : pieces) str(p);
  str("tokenizer.ggml.scores"), u32(9), u32(6), u64(pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i) {
    const float score = -static_cast<float>(i);
    b.append(reinterpret_cast<const char*>(&score), 4);
  }
  str("tokenizer.ggml.token_type"), u32(9), u32(5), u64(pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i) u32(i == 0 ? 2 : i < 3 ? 3 : i == 3 ? 6 : 1);
  str("tokenizer.ggml.bos_token_id"), u32(4), u32(1);
  str("tokenizer.ggml.eos_token_id"), u32(4), u32(2);
  str("tokenizer.ggml.add_space_prefix"), u32(7), b.push_back(1);
  return b;
}

// A byte-level BPE tokenizer.json: GPT-2's 256-character byte alphabet and
// a few merges (what read_hf_tokenizer needs, at a fuzzable size).
std::string tiny_tokenizer_json() {
  nlohmann::ordered_json vocab;
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    const int cp = printable ? b : next++;
    std::string ch;
    if (cp < 0x80) ch.push_back(static_cast<char>(cp));
    else ch = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    vocab[ch] = b;
  }
  vocab["He"] = 256, vocab["ll"] = 257, vocab["\u0120w"] = 258, vocab["Hell"] = 259;
  const nlohmann::ordered_json j = {
      {"version", "1.0"},
      {"added_tokens", {{{"id", 260}, {"content", "<|endoftext|>"}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"H e", "l l", "\u0120 w", "He ll"}}}}};
  return j.dump();
}

// A ZIP archive (numpy's .npz) of .npy members, stored or raw-deflated.
std::string zip_of(const std::vector<std::pair<std::string, std::string>>& members, bool deflated) {
  std::string out, central;
  auto le = [](std::string& b, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<char>(v >> (8 * i)));
  };
  for (const auto& [name, data] : members) {
    std::string body = data;
    if (deflated) {
      z_stream zs{};
      deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
      body.assign(deflateBound(&zs, data.size()), '\0');
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
      zs.avail_in = static_cast<uInt>(data.size());
      zs.next_out = reinterpret_cast<Bytef*>(body.data());
      zs.avail_out = static_cast<uInt>(body.size());
      ::deflate(&zs, Z_FINISH);
      body.resize(zs.total_out);
      deflateEnd(&zs);
    }
    const uint32_t crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
    const uint64_t offset = out.size();
    for (std::string* b : {&out, &central}) {
      const bool cd = b == &central;
      le(*b, cd ? 0x02014b50 : 0x04034b50, 4);
      if (cd) le(*b, 20, 2);
      le(*b, 20, 2), le(*b, 0, 2), le(*b, deflated ? 8 : 0, 2), le(*b, 0, 4);
      le(*b, crc, 4), le(*b, body.size(), 4), le(*b, data.size(), 4), le(*b, name.size(), 2), le(*b, 0, 2);
      if (cd) le(*b, 0, 2), le(*b, 0, 2), le(*b, 0, 2), le(*b, 0, 4), le(*b, offset, 4);
      *b += name;
    }
    out += body;
  }
  const uint64_t cd_offset = out.size();
  out += central;
  le(out, 0x06054b50, 4), le(out, 0, 2), le(out, 0, 2), le(out, members.size(), 2), le(out, members.size(), 2);
  le(out, central.size(), 4), le(out, cd_offset, 4), le(out, 0, 2);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: slmopt_fuzz_seeds OUT_DIR SOURCE_DIR\n";
    return 2;
  }
  g_out = argv[1];
  const fs::path source = argv[2];
  try {
    put("hf_config", "llama.json", kLlamaConfig);
    put("hf_config", "gpt2.json", kGpt2Config);
    put("hf_config", "qwen2.json", kQwen2Config);
    put_file("hf_config", "stories260K.json", source / "tests/data/stories260K/config.json");

    const auto weights = llama_weights();
    const Model llama = llm::build_decoder(parse_hf_config(kLlamaConfig, "config.json"), weights, "seed");
    put("onnx", "llama.onnx", tensor_bytes("m.onnx", [&](const std::string& p) { onnx_format::write_onnx(llama, p); }));
    // External data: the target's folder holds model.onnx.data (16 KiB); these offsets fall inside it.
    onnx_format::WriteOptions external;
    external.external = onnx_format::ExternalData::Always;
    external.external_min_bytes = 64;
    put("onnx", "llama_external.onnx",
        tensor_bytes("model.onnx", [&](const std::string& p) { onnx_format::write_onnx(llama, p, external); }));
    put("safetensors", "llama.safetensors",
        tensor_bytes("m.safetensors", [&](const std::string& p) { safetensors::write_file(p, weights, {{"format", "pt"}}); }));
    {
      const fs::path dir = fs::temp_directory_path() / ("slmopt-seeds-index-" + std::to_string(::getpid()));
      fs::create_directories(dir);
      put("safetensors_index", "sharded.json", fuzz::write_index_shards(dir.string()));
      fs::remove_all(dir);
    }
    put("llama2c", "llama.bin", tensor_bytes("m.bin", [&](const std::string& p) { llama2c::write_checkpoint(llama, p); }));

    // Quantized with several schemes: .slm, blob (with golden vectors), OTA.
    const char* specs[] = {"q4", "q8", "int3-g16-asym", "ternary", "nf4", "q2", "ec4-ch", "tcq3-ch"};
    int k = 0;
    for (const char* spec : specs) {
      passes::QuantizeConfig config;
      config.default_spec = spec;
      config.min_elements = 0;
      config.algorithm = "rtn";
      passes::QuantizeReport report;
      const Model q = passes::quantize_model(llama, config, report);
      put("slm", std::string(spec) + ".slm", tensor_bytes("m.slm", [&](const std::string& p) { slm::write_slm(q, p); }));
      blob::BlobOptions options;
      options.model_name = "seed";
      if (k++ % 2 == 0) {
        blob::GoldenVectors golden;
        golden.input_names = {"input_ids"};
        golden.output_names = {"logits"};
        golden.inputs = {{Tensor::from_values<int64_t>(DType::I64, {1, 3}, {1, 5, 7})}};
        golden.outputs = {{values({1, 3, 16}, 99)}};
        golden.atol = 1e-3f;
        options.golden = golden;
      }
      const auto blob = blob::build_blob(q, options);
      put("blob", std::string(spec) + ".bin", std::string(blob.begin(), blob.end()));
      put("blob_c", std::string(spec) + ".bin", std::string(blob.begin(), blob.end()));
      ota::PackageOptions package;
      package.model_name = "seed";
      package.model_version = "1";
      package.zstd_level = 3;
      const auto ota = ota::build_package(blob, package);
      put("ota", std::string(spec) + ".ota", std::string(ota.begin(), ota.end()));
    }

    // Pruned (every other weight of every matrix zero) and stored sparse:
    // q4 codes and f32 values behind a bitmap.
    {
      Model pruned = llama;
      for (auto& init : pruned.graph.initializers)
        if (init.tensor.dtype() == DType::F32 && init.tensor.rank() == 2)
          for (int64_t i = 0; i < init.tensor.numel(); i += 2) init.tensor.mutable_data<float>()[i] = 0.0f;
      passes::QuantizeConfig config;
      config.default_spec = "q4";
      config.min_elements = 0;
      config.algorithm = "rtn";
      passes::QuantizeReport report;
      const Model q = passes::quantize_model(pruned, config, report);
      passes::store_sparse_floats(pruned, 0);
      for (const auto& named : {std::pair<std::string, const Model*>{"sparse_q4", &q}, {"sparse_f32", &pruned}}) {
        const std::string& name = named.first;
        const Model* model = named.second;  // a lambda may not capture a structured binding (clang 14)
        put("slm", name + ".slm", tensor_bytes("m.slm", [&](const std::string& p) { slm::write_slm(*model, p); }));
        const auto blob = blob::build_blob(*model, {});
        put("blob", name + ".bin", std::string(blob.begin(), blob.end()));
        put("blob_c", name + ".bin", std::string(blob.begin(), blob.end()));
      }
    }

    // Calibration statistics of the tiny Llama on two random token sequences.
    runtime::Session session(llama);
    const auto samples = calib::random_samples(session.feed_inputs(), 2, 7);
    calib::CollectOptions collect;
    collect.histogram_bins = 16;
    const auto stats = calib::collect_stats(llama, samples, collect);
    put("calib_stats", "llama.calib", tensor_bytes("m.calib", [&](const std::string& p) { calib::write_stats(stats, p); }));

    const std::pair<const char*, Tensor> arrays[] = {
        {"f32", values({2, 3}, 5)},
        {"i64", Tensor::from_values<int64_t>(DType::I64, {4}, {1, -2, 3, 1 << 30})},
        {"u8", Tensor::from_values<uint8_t>(DType::U8, {2, 2, 1}, {1, 2, 3, 255})},
        {"f16", Tensor(DType::F16, {3})},
        {"bool", Tensor(DType::Bool, {2})},
        {"scalar", Tensor::from_values<double>(DType::F64, {}, {3.5})},
    };
    std::vector<std::pair<std::string, std::string>> members;
    for (const auto& [name, t] : arrays) {
      const Tensor& array = t;  // clang 14 cannot capture a structured binding
      const std::string npy = tensor_bytes("x.npy", [&](const std::string& p) { calib::write_npy(p, array); });
      put("npy", std::string(name) + ".npy", npy);
      members.emplace_back(std::string(name) + ".npy", npy);
      onnx::TensorProto proto;
      onnx_format::encode_tensor_inline(t, proto);
      put("tensor_pb", std::string(name) + ".pb", proto.SerializeAsString());
    }
    // 4-bit tensors travel packed two a byte (an odd count leaves half a byte).
    for (const auto& [name, t] : {std::pair<const char*, Tensor>{"i4", Tensor::from_values<int8_t>(DType::I4, {3}, {-8, 7, 3})},
                                  std::pair<const char*, Tensor>{"u4", Tensor::from_values<uint8_t>(DType::U4, {5}, {15, 0, 1, 9, 4})}}) {
      onnx::TensorProto proto;
      onnx_format::encode_tensor_inline(t, proto);
      put("tensor_pb", std::string(name) + ".pb", proto.SerializeAsString());
    }
    put("npz", "stored.npz", zip_of(members, false));
    put("npz", "deflated.npz", zip_of(members, true));

    for (const char* rules : {"wakeword-bits.yaml", "prune-rules.yaml", "lowrank-rules.yaml"})
      put_file("rule_file", rules, source / "examples" / rules);
    put("rule_file", "rules.json",
        R"({"default": "q4", "min_elements": 16, "rules": [{"match": "*embed*", "bits": 8}, {"op": "MatMul", "scheme": "int4-g32-asym-k6"}, {"match": "*head*", "keep": "f16"}]})");

    put("tokenizer", "tiny.json", std::string(1, '\0') + tiny_tokenizer_json());
    put("tokenizer", "tok512.bin", std::string(1, '\1') + slurp(source / "tests/data/stories260K/tok512.bin"));
    put("tokenizer", "tiny.gguf", std::string(1, '\2') + tiny_gguf());
  } catch (const std::exception& e) {
    std::cerr << "slmopt_fuzz_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
