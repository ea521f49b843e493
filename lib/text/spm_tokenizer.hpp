// SentencePiece BPE with byte fallback, as Llama 2, TinyLlama and llama2.c
// tokenize: spaces become the vocabulary's space marker, a marker is put in
// front of the text, the text is split into UTF-8 characters, and the adjacent
// pair whose joined piece scores highest is merged until no joined piece is in
// the vocabulary (the leftmost pair among equal scores). A character with no
// piece becomes its UTF-8 bytes' <0xXX> pieces.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/piece_vocab.hpp"
#include "text/tokenizer.hpp"

namespace slmopt::text {

class SpmTokenizer : public Tokenizer {
 public:
  explicit SpmTokenizer(PieceVocab vocab);

  // Ids of `text`, without BOS.
  std::vector<int64_t> encode(std::string_view text) const override;
  // The bytes token `id` stands for when it follows `previous` (-1 at the start):
  // markers become spaces, byte pieces their byte, control tokens nothing, and
  // the space put in front of the text is dropped again.
  std::string decode(int64_t id, int64_t previous) const override;
  using Tokenizer::decode;

  int64_t size() const override { return static_cast<int64_t>(vocab_.pieces.size()); }
  int64_t bos() const override { return vocab_.bos; }
  int64_t eos() const override { return vocab_.eos; }

 private:
  int64_t find(std::string_view piece) const;
  PieceVocab vocab_;
  std::unordered_map<std::string, int64_t> ids_;
  int64_t byte_ids_[256];
};

}  // namespace slmopt::text
