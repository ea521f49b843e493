// A SentencePiece-style vocabulary: pieces with scores and types, whichever
// file it came from (formats/tokenizer reads them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace slmopt::text {

// SentencePiece's piece types, as GGUF stores them.
enum class PieceType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct PieceVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<PieceType> types;
  std::string space;  // what stands for a space inside pieces: "\xE2\x96\x81" (U+2581), or " " in llama2.c files
  bool add_space_prefix = true;
  int64_t bos = -1, eos = -1, unk = 0;
};

}  // namespace slmopt::text
