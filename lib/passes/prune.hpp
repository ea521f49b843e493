// The prune pass: every weight a MatMul, Gemm or Conv reads is matched
// against the rules (first match wins) and the lowest-scoring share of it is
// set to zero: by magnitude, by Wanda's |w|·||x|| or by SparseGPT (both need
// calibration), to a fraction or an N:M pattern. Shapes do not change; the
// zeros pay off once a sparse format stores them (docs/prune.md).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "calib/stats.hpp"
#include "core/ir.hpp"
#include "core/rules.hpp"
#include "passes/quantize.hpp"

namespace slmopt::passes {

struct PruneConfig {
  RuleSet rules;
  std::string sparsity = "0.5";       // for weights no rule matches: a fraction or "N:M"
  std::string method = "magnitude";   // magnitude, wanda or sparsegpt
  std::string scope = "layer";        // layer, or global: one magnitude threshold over a rule's layers
  int64_t min_elements = 1024;        // smaller weights stay dense unless a rule matches them
  const calib::CalibStats* stats = nullptr;
  bool expect_stats = false;          // stats will come: check the config without them
  // Structured: "" (off), "channels" (every channel group), "ffn" (groups of
  // MatMul/Gemm layers: feed-forward neurons) or "heads" (attention heads). Whole channels go and tensors
  // shrink; magnitude ranks them by their layers' weights, wanda by the
  // output energy each feeds into the layers that read it.
  std::string structured;
  // With wanda and calibration: move each removed channel's mean output
  // into the biases of the layers that read it.
  bool compensate_means = true;
  // Pruning nothing is an error (Error(Usage)) unless this is set.
  bool allow_empty = false;
};

struct PrunedTensor {
  std::string name, node, op;
  std::string rule;    // the rule's label, "default", "small tensor" or why it was left
  std::string target;  // "0.5", "2:4", or "" when left dense
  std::string method;
  std::vector<int64_t> shape;
  int64_t numel = 0, zeros = 0;  // zeros after pruning
  double relative_error = 0;     // ||W - W'|| / ||W||
  double output_error = -1;      // on the calibration inputs, -1 when not known
};

struct PrunedGroup {
  std::vector<std::string> producers, consumers;  // weights
  std::string rule, target, method;
  int64_t channels = 0, kept = 0;
  int64_t params_before = 0, params_after = 0;  // of every tensor the group cuts
  size_t compensated = 0;                       // readers whose bias took the removed channels' means
  std::string why_not;                          // set when the group was left
};

struct PruneReport {
  std::vector<PrunedTensor> tensors;
  std::vector<PrunedGroup> groups;  // structured pruning
  int64_t weights = 0, zeros = 0;  // over every weight listed
  std::vector<std::string> warnings;
};

// Keys a prune rule may set; anything else is an error naming the rule.
const std::vector<std::string>& prune_rule_keys();

// Checks every rule up front; Error(Usage) names the rule.
void check_prune_config(const PruneConfig& config);

// Unstructured or N:M unless config.structured is set, then prune_structured.
Model prune_model(const Model& model, const PruneConfig& config, PruneReport& report, const Progress& progress = {});

// Structured pruning (lib/passes/prune_structured.cpp): rules match a
// group's first producing weight; every group is listed, pruned or with why not.
Model prune_structured(const Model& model, const PruneConfig& config, PruneReport& report);

// The rule for a structured unit (a channel group, an attention layer) by its
// first weight: fills row.rule, row.method and row.target, counts the rule's
// hit, and returns the fraction of units to remove. Error(Usage) for N:M or
// a method other than magnitude or wanda; `units` names them in the message.
double structured_fraction(const PruneConfig& config, const std::string& weight, const std::string& node,
                           const std::string& op, const char* units, PrunedGroup& row, std::vector<int64_t>& rule_hits);

// Attention heads (lib/passes/prune_heads.cpp): in each layer of a decoder
// that formats/llm built, the rule matching its q_proj (GPT-2: c_attn) weight
// sets the share of key/value heads removed, each with the query heads that share it.
// Graphs formats/llm did not build go to prune_fused_heads, then prune_exported_heads.
Model prune_heads(const Model& model, const PruneConfig& config, PruneReport& report);

// Attention heads in graphs as ONNX exporters write them
// (lib/passes/prune_heads_exported.cpp): false when no such attention is found.
bool prune_exported_heads(Model& model, const PruneConfig& config, PruneReport& report);

// Heads of fused attention nodes with head-count attributes: com.microsoft
// Attention and MultiHeadAttention, ONNX Attention (opset 23) on 3-D inputs
// (lib/passes/prune_heads_fused.cpp): false when there is none.
bool prune_fused_heads(Model& model, const PruneConfig& config, PruneReport& report);

// Head scores of the heads passes: sum over rows r of W [rows, out] of
// ||W[r, :]||^2, times energy[r] when given (wanda's E[x_r^2]); and sum over
// columns c of W [in, width] of ||W[:, offset + c]||^2.
double rows_energy(const Tensor& w, const std::vector<int64_t>& rows, const std::vector<float>* energy);
double columns_energy(const Tensor& w, const std::vector<int64_t>& cols, int64_t offset = 0);

// The end of every heads pass: drop the constants it replaced that nothing
// reads now, and warn of rules that matched no attention layer.
void finish_heads(Graph& g, const std::set<std::string>& replaced, const PruneConfig& config,
                  const std::vector<int64_t>& rule_hits, PruneReport& report);

}  // namespace slmopt::passes
