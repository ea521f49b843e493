#include "lm_text.hpp"

#include <algorithm>
#include <filesystem>

#include "calib/npy.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "llm/decoder_graph.hpp"
#include "text/bpe_tokenizer.hpp"
#include "text/spm_tokenizer.hpp"
#include "tokenizer/vocab_io.hpp"

namespace slmopt::cli {

std::optional<std::string> find_tokenizer(const std::string& model_path, const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = fs::is_directory(model_path, ec) ? fs::path(model_path) : fs::path(model_path).parent_path();
  const fs::path where = dir.empty() ? fs::path(".") : dir;
  for (const char* name : {"tokenizer.json", "tokenizer.bin"})
    if (fs::exists(where / name, ec)) return (where / name).string();
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(where, ec)) {
    const std::string name = e.path().filename().string();
    if ((name.starts_with("tok") && name.ends_with(".bin")) || name.ends_with(".gguf")) found.push_back(e.path().string());
  }
  if (found.size() == 1) return found[0];
  return std::nullopt;
}

std::unique_ptr<text::Tokenizer> load_tokenizer(const std::string& path, int64_t vocab) {
  std::unique_ptr<text::Tokenizer> tok;
  if (path.ends_with(".json")) {
    tok = std::make_unique<text::BpeTokenizer>(text::read_hf_tokenizer(path));
  } else {
    const std::string head = read_small_file(path, 1u << 30).substr(0, 4);
    tok = std::make_unique<text::SpmTokenizer>(head == "GGUF" ? text::read_gguf_vocab(path)
                                                              : text::read_llama2c_tokenizer(path, vocab));
  }
  // A model's vocabulary may be padded beyond the tokenizer's (to a multiple of 64, say), never smaller.
  if (tok->size() > vocab)
    throw_bad_input("the tokenizer has " + std::to_string(tok->size()) + " tokens, the model only " + std::to_string(vocab), path);
  return tok;
}

std::unique_ptr<text::Tokenizer> require_tokenizer(const std::string& model_path, const std::string& explicit_path, int64_t vocab) {
  const auto path = find_tokenizer(model_path, explicit_path);
  if (!path)
    throw_usage("no tokenizer beside '" + model_path +
                "': give --tokenizer (a llama2.c tokenizer.bin or a GGUF vocabulary)");
  return load_tokenizer(*path, vocab);
}

std::vector<int64_t> tokenize_file(const text::Tokenizer& tokenizer, const std::string& path) {
  return tokenizer.encode(read_small_file(path, 1u << 30));
}

std::vector<int64_t> token_ids_from_npy(const std::string& path) {
  const Tensor t = calib::read_npy(path);
  if (t.rank() > 2 || (t.rank() == 2 && t.shape()[0] != 1))
    throw_bad_input("token ids must be a 1-D or [1, n] array, got " + shape_to_string(t.shape()), path);
  std::vector<int64_t> ids;
  if (t.dtype() == DType::I64) ids.assign(t.data<int64_t>(), t.data<int64_t>() + t.numel());
  else if (t.dtype() == DType::I32) ids.assign(t.data<int32_t>(), t.data<int32_t>() + t.numel());
  else throw_bad_input("token ids must be int32 or int64, got " + std::string(dtype_name(t.dtype())), path);
  return ids;
}

std::vector<std::vector<int64_t>> text_windows(const Model& model, const std::string& model_path,
                                               const std::string& text_path, const std::string& tokenizer_path,
                                               int64_t context, int64_t stride, int64_t vocab) {
  const auto info = llm::read_decoder_info(model);
  if (context <= 0) context = std::min<int64_t>(info ? info->context : 512, 512);
  int64_t bos = info ? info->bos_token_id : -1;
  std::vector<int64_t> tokens;
  if (text_path.ends_with(".npy")) {  // ids tokenized elsewhere
    tokens = token_ids_from_npy(text_path);
  } else {
    const auto tokenizer = require_tokenizer(model_path, tokenizer_path, vocab);
    if (bos < 0) bos = tokenizer->bos();
    tokens = tokenize_file(*tokenizer, text_path);
  }
  return lm::token_windows(tokens, {context, stride, bos});
}

std::vector<calib::Sample> text_samples(const Model& model, const std::string& model_path, const std::string& text_path,
                                        const std::string& tokenizer_path, int64_t context) {
  const lm::DecoderRunner probe(model);
  const auto windows = text_windows(model, model_path, text_path, tokenizer_path, context, 0, probe.vocab());
  std::vector<calib::Sample> samples;
  for (const auto& w : windows) {
    calib::Sample s;
    s["input_ids"] = Tensor::from_values(DType::I64, {1, context}, w);
    for (int64_t i = 0; i < probe.layers(); ++i) {
      const Tensor empty(DType::F32, {1, probe.kv_heads(static_cast<size_t>(i)), 0, probe.head_dim()});
      s[llm::past_key_name(i)] = empty;
      s[llm::past_value_name(i)] = empty;
    }
    samples.push_back(std::move(s));
  }
  return samples;
}

}  // namespace slmopt::cli
