// The lowrank pass: a MatMul or Gemm weight W (outputs x inputs) becomes two
// products, x -> B x -> A (B x), with A (outputs x r) and B (r x inputs) from
// a truncated SVD, when r (outputs + inputs) < outputs x inputs. The rank
// comes from the first matching rule: fixed, a fraction of the full rank,
// the share of energy (sum of squared singular values) kept, or a parameter
// budget. `whiten` factorizes W L instead, L the Cholesky factor of the
// layer's X^T X (SVD-LLM), which minimises the output error on the
// calibration inputs rather than the weight error.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "calib/stats.hpp"
#include "core/ir.hpp"
#include "core/rules.hpp"
#include "passes/quantize.hpp"

namespace slmopt::passes {

enum class RankKind { Fixed, Fraction, Energy, Params };

struct RankRule {
  RankKind kind = RankKind::Energy;
  double value = 0.95;  // rank, fraction of min(m, n), energy share, or fraction of m x n parameters
};

// A rank rule from one setting: rank=64, rank_fraction=0.25, energy=0.95 or
// params=0.5. Error(Usage) naming `where` for a bad value.
RankRule parse_rank_rule(const std::string& key, const std::string& value, const std::string& where);
std::string format_rank_rule(const RankRule& r);

struct Factors {
  int64_t rank = 0;            // 0: not factorized (see note)
  double energy_kept = 0;      // sum of the kept sigma^2 over all (of W, or of W L when whitened)
  std::vector<float> first;    // B: rank x cols, row-major (applied to the input first)
  std::vector<float> second;   // A: rows x rank, row-major
  std::string note;            // why not factorized
};

// Factorizes w (rows x cols, row-major). With `gram` (cols x cols X^T X)
// the SVD is of W L, H + damp * mean(diag H) I = L L^T. Unless
// `only_if_smaller` is false, a rank that saves no parameters is refused.
Factors factorize(const std::vector<float>& w, int64_t rows, int64_t cols, const RankRule& rule,
                  const double* gram = nullptr, double damp = 0.01, bool only_if_smaller = true);

struct LowrankConfig {
  RuleSet rules;
  RankRule rank;                 // for weights no rule matches
  std::string method = "svd";    // svd, or whiten (needs calibration)
  int64_t min_elements = 4096;   // smaller weights stay as they are unless a rule matches them
  const calib::CalibStats* stats = nullptr;
  bool expect_stats = false;
  bool allow_empty = false;      // factorizing nothing is an error (Error(Usage)) unless set
};

struct FactorizedTensor {
  std::string name, node, op, rule, method;
  std::vector<int64_t> shape;
  int64_t rank = 0, full_rank = 0;
  int64_t params_before = 0, params_after = 0;
  double energy_kept = 0;
  double relative_error = 0;  // ||W - A B|| / ||W||
  double output_error = -1;   // on the calibration inputs, -1 when not known
  std::string note;           // why it was left
};

struct LowrankReport {
  std::vector<FactorizedTensor> tensors;
  int64_t params_before = 0, params_after = 0;
  std::vector<std::string> warnings;
};

// "rank", "rank_fraction", "energy", "params", "method", "damp", "keep".
const std::vector<std::string>& lowrank_rule_keys();
void check_lowrank_config(const LowrankConfig& config);

Model lowrank_model(const Model& model, const LowrankConfig& config, LowrankReport& report, const Progress& progress = {});

}  // namespace slmopt::passes
