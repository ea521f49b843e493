// Text for the language-model commands: finding and loading the tokenizer of a
// model, and turning a text file into token windows or calibration samples.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "calib/dataset.hpp"
#include "lm/lm_eval.hpp"
#include "text/tokenizer.hpp"

namespace slmopt::cli {

// `explicit_path`, or the tokenizer beside the model: tokenizer.json,
// tokenizer.bin, or the one tok*.bin or *.gguf; nullopt when there is none.
std::optional<std::string> find_tokenizer(const std::string& model_path, const std::string& explicit_path);
// A Hugging Face tokenizer.json (byte-level BPE), a llama2.c tokenizer.bin or a
// GGUF vocabulary (SentencePiece), checked against the model's vocabulary size.
std::unique_ptr<text::Tokenizer> load_tokenizer(const std::string& path, int64_t vocab);
// find_tokenizer + load_tokenizer; throws Error(Usage) naming what to pass when none is found.
std::unique_ptr<text::Tokenizer> require_tokenizer(const std::string& model_path, const std::string& explicit_path, int64_t vocab);

// The tokens of a whole UTF-8 text file.
std::vector<int64_t> tokenize_file(const text::Tokenizer& tokenizer, const std::string& path);

// Token ids stored as a 1-D or [1, n] integer .npy.
std::vector<int64_t> token_ids_from_npy(const std::string& path);

// A text (UTF-8, or a .npy of token ids) cut into windows of `context` tokens
// (0: the model's context, at most 512) starting `stride` apart (0: context),
// each starting with BOS when the model or tokenizer has one.
std::vector<std::vector<int64_t>> text_windows(const Model& model, const std::string& model_path,
                                               const std::string& text_path, const std::string& tokenizer_path,
                                               int64_t context, int64_t stride, int64_t vocab);

// Windows of a text file for a decoder model as samples: input_ids [1, context]
// and empty past_key_values.
std::vector<calib::Sample> text_samples(const Model& model, const std::string& model_path, const std::string& text_path,
                                        const std::string& tokenizer_path, int64_t context);

}  // namespace slmopt::cli
