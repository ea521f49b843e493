// A byte-level BPE vocabulary as Hugging Face's tokenizer.json holds it
// (formats/tokenizer reads it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace slmopt::text {

struct BpeVocab {
  std::vector<std::string> tokens;  // by id, in the byte-to-unicode alphabet
  std::vector<std::pair<std::string, std::string>> merges;  // by rank
  std::vector<std::pair<std::string, int64_t>> special;     // added tokens matched before splitting
  std::string pattern;  // the pre-tokenizer's split regex (PCRE syntax)
  bool add_prefix_space = false;
  int64_t bos = -1, eos = -1;
};

// GPT-2's split pattern (ByteLevel with use_regex).
inline constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace slmopt::text
