// The Llama-family graph builder (Llama, Mistral, Qwen2); see decoder_graph.hpp.
#pragma once

#include "core/ir.hpp"
#include "hf_config/hf_config.hpp"
#include "llm/weight_table.hpp"

namespace slmopt::llm {

Model build_llama_graph(const ArchConfig& config, WeightTable& weights);

}  // namespace slmopt::llm
