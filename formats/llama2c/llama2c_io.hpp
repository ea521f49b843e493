// llama2.c checkpoints (github.com/karpathy/llama2.c), the format the
// microcontroller LLM demos run: a header of seven int32 sizes and the f32
// weights, in two layouts:
//   legacy (run.c): 7 x int32 [dim, hidden_dim, n_layers, n_heads, n_kv_heads,
//     vocab_size (negative: separate classifier), seq_len]; then embedding,
//     attention norms, wq, wk, wv, wo, ffn norms, w1, w2, w3, final norm,
//     freq_cis real/imag (seq_len x head_size/2 each, unused), classifier;
//   version 1 (export.py): magic "ak42", int32 version 1, the seven sizes, a
//     uint8 shared-classifier flag, zero padding to 256 bytes; then attention
//     norms, ffn norms, final norm, embedding, wq, wk, wv, wo, w1, w2, w3, classifier.
// llama2.c rotates interleaved pairs of a head; Hugging Face rotates halves.
// The reader permutes wq and wk rows into Hugging Face's order, so one graph
// builder serves both and the tensors carry Hugging Face's names.
#pragma once

#include <string>
#include <vector>

#include "core/ir.hpp"
#include "hf_config/hf_config.hpp"

namespace slmopt::llama2c {

struct Checkpoint {
  ArchConfig config;
  std::vector<NamedTensor> tensors;
  int version = 0;  // 0: legacy, 1: "ak42" version 1
};

// Throws Error(BadInput) naming the file for a bad header or a size that does
// not match the header.
Checkpoint read_checkpoint(const std::string& path);

// True when the file starts like a llama2.c checkpoint and has exactly the size
// its header implies (a cheap check, for telling formats apart).
bool looks_like_checkpoint(const std::string& path);

// The checkpoint as a decoder graph (see llm/decoder_graph.hpp).
Model read_model(const std::string& path);

// Writes `model` (a Llama decoder with f32 weights, as read_model or the
// safetensors builder makes it) as a version-1 checkpoint, atomically.
void write_checkpoint(const Model& model, const std::string& path);

}  // namespace slmopt::llama2c
