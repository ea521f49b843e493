// Byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM): special tokens are cut out
// first, the rest is split by the pre-tokenizer's regex, each piece's bytes are
// spelled in GPT-2's byte-to-unicode alphabet, and within a piece the adjacent
// pair of lowest merge rank is joined until no pair has a rank.
#pragma once

#include <map>
#include <memory>
#include <unordered_map>

#include "text/bpe_vocab.hpp"
#include "text/tokenizer.hpp"

namespace slmopt::text {

class BpeTokenizer : public Tokenizer {
 public:
  // Throws Error(BadInput) when the pattern does not compile.
  explicit BpeTokenizer(BpeVocab vocab);
  ~BpeTokenizer() override;

  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(int64_t id, int64_t previous) const override;
  using Tokenizer::decode;
  int64_t size() const override { return static_cast<int64_t>(vocab_.tokens.size()); }
  int64_t bos() const override { return vocab_.bos; }
  int64_t eos() const override { return vocab_.eos; }

 private:
  void encode_piece(std::string_view bytes, std::vector<int64_t>& out) const;
  BpeVocab vocab_;
  std::unordered_map<std::string, int64_t> ids_;
  std::unordered_map<std::string, int64_t> ranks_;  // "left right" (no alphabet character is a space)
  std::string byte_char_[256];  // byte -> its UTF-8 character in the alphabet
  std::unordered_map<std::string, uint8_t> char_byte_;
  struct Regex;
  std::unique_ptr<Regex> regex_;
};

}  // namespace slmopt::text
