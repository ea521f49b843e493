// Decoder-only language models as ONNX graphs (opset 17 ops only, so ONNX
// Runtime and ONNX's checker accept them). Every architecture's graph has the
// interface Hugging Face's ONNX exports use:
//   inputs  input_ids [batch, sequence] int64,
//           past_key_values.{i}.key / .value [batch, kv_heads, past_sequence, head_dim]
//   outputs logits [batch, sequence, vocab],
//           present.{i}.key / .value [batch, kv_heads, past_sequence + sequence, head_dim]
// Positions continue from the past length, so one graph serves a whole prompt
// (past length 0) and each generated token (the presents fed back as pasts).
// Weights keep their checkpoint names; linear layers are Gemm with transB, which
// reads Hugging Face's [out, in] matrices as they are stored.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/ir.hpp"
#include "hf_config/hf_config.hpp"

namespace slmopt::llm {

// Throws Error(BadInput) naming `file` for an unsupported setting, a missing or
// misshaped tensor, or a tensor the architecture does not use.
Model build_decoder(const ArchConfig& config, std::vector<NamedTensor> tensors, const std::string& file);

// What a runner needs to know of a decoder model, kept in the model's metadata
// so it survives .onnx, .slm and blobs.
struct DecoderInfo {
  std::string family;
  int64_t num_layers = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t context = 0;  // max_position_embeddings
  double rope_theta = 0;
  double norm_eps = 0;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
};
void write_decoder_info(Model& model, const DecoderInfo& info);
// nullopt when the model is not a decoder built here.
std::optional<DecoderInfo> read_decoder_info(const Model& model);

inline std::string past_key_name(int64_t layer) { return "past_key_values." + std::to_string(layer) + ".key"; }
inline std::string past_value_name(int64_t layer) { return "past_key_values." + std::to_string(layer) + ".value"; }
inline std::string present_key_name(int64_t layer) { return "present." + std::to_string(layer) + ".key"; }
inline std::string present_value_name(int64_t layer) { return "present." + std::to_string(layer) + ".value"; }

}  // namespace slmopt::llm
