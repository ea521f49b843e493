// Text for the language-model commands: finding and loading the tokenizer of a
// model, and turning a text file into token windows or calibration samples.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "calib/dataset.hpp"
#include "lm/lm_eval.hpp"
#include "text/spm_tokenizer.hpp"

namespace slmopt::cli {

// `explicit_path`, or the one tokenizer file beside the model (tokenizer.bin,
// tok*.bin or *.gguf); nullopt when there is none or more than one.
std::optional<std::string> find_tokenizer(const std::string& model_path, const std::string& explicit_path);
// A llama2.c tokenizer.bin or a GGUF vocabulary, checked against the model's vocabulary size.
text::SpmTokenizer load_tokenizer(const std::string& path, int64_t vocab);
// find_tokenizer + load_tokenizer; throws Error(Usage) naming what to pass when none is found.
text::SpmTokenizer require_tokenizer(const std::string& model_path, const std::string& explicit_path, int64_t vocab);

// The tokens of a whole UTF-8 text file.
std::vector<int64_t> tokenize_file(const text::SpmTokenizer& tokenizer, const std::string& path);

// Windows of a text file for a decoder model as samples: input_ids [1, context]
// and empty past_key_values.
std::vector<calib::Sample> text_samples(const Model& model, const std::string& model_path, const std::string& text_path,
                                        const std::string& tokenizer_path, int64_t context);

}  // namespace slmopt::cli
