// The GPT-2 graph builder (GPT2LMHeadModel); see decoder_graph.hpp.
#pragma once

#include "core/ir.hpp"
#include "hf_config/hf_config.hpp"
#include "llm/weight_table.hpp"

namespace slmopt::llm {

Model build_gpt2_graph(const ArchConfig& config, WeightTable& weights);

}  // namespace slmopt::llm
