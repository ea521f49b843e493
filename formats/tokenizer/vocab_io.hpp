// Readers of tokenizer vocabularies: SentencePiece-style pieces with scores
// from llama2.c's tokenizer.bin or a GGUF file (llama.cpp's format; only its
// key/value section is read, its tensors are skipped), and byte-level BPE from
// Hugging Face's tokenizer.json.
#pragma once

#include <cstdint>
#include <string>

#include "text/bpe_vocab.hpp"
#include "text/piece_vocab.hpp"

namespace slmopt::text {

// llama2.c: int32 max_token_length, then per piece: f32 score, int32 length,
// the bytes. The piece count is the model's vocabulary size (`expected_pieces`,
// 0: as many as the file holds). Throws Error(BadInput) naming the file.
PieceVocab read_llama2c_tokenizer(const std::string& path, int64_t expected_pieces = 0);

// tokenizer.ggml.{model ("llama"), tokens, scores, token_type, bos/eos/unknown_token_id, add_space_prefix}.
PieceVocab read_gguf_vocab(const std::string& path);

// Hugging Face tokenizer.json with a byte-level BPE model: vocab, merges (as
// "a b" strings or [a, b] pairs), added tokens, and a ByteLevel pre-tokenizer
// (GPT-2's regex) or a Split regex followed by ByteLevel (Llama 3, Qwen2).
// Other models, normalizers and pre-tokenizers are refused by name.
BpeVocab read_hf_tokenizer(const std::string& path);

}  // namespace slmopt::text
