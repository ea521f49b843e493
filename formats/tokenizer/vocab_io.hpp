// Readers of SentencePiece-style vocabularies (pieces with scores and types):
// llama2.c's tokenizer.bin and the tokenizer of a GGUF file (llama.cpp's
// format; only its key/value section is read, its tensors are skipped).
#pragma once

#include <cstdint>
#include <string>

#include "text/piece_vocab.hpp"

namespace slmopt::text {

// llama2.c: int32 max_token_length, then per piece: f32 score, int32 length,
// the bytes. The piece count is the model's vocabulary size (`expected_pieces`,
// 0: as many as the file holds). Throws Error(BadInput) naming the file.
PieceVocab read_llama2c_tokenizer(const std::string& path, int64_t expected_pieces = 0);

// tokenizer.ggml.{model ("llama"), tokens, scores, token_type, bos/eos/unknown_token_id, add_space_prefix}.
PieceVocab read_gguf_vocab(const std::string& path);

}  // namespace slmopt::text
