#include "passes/lowrank.hpp"

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/weight_uses.hpp"
#include "passes/layer_weight.hpp"
#include "passes/svd.hpp"
#include "runtime/constants.hpp"

namespace slmopt::passes {
namespace {

// Matrices up to this size along their short side get the exact SVD.
constexpr int64_t kExactSvdLimit = 512;

const std::vector<std::string> kRankKeys = {"rank", "rank_fraction", "energy", "params"};

// The rank a rule asks for when it does not depend on the spectrum; -1 for energy.
int64_t rank_before_svd(const RankRule& rule, int64_t rows, int64_t cols) {
  const int64_t full = std::min(rows, cols);
  switch (rule.kind) {
    case RankKind::Fixed: return std::min<int64_t>(full, static_cast<int64_t>(rule.value));
    case RankKind::Fraction: return std::clamp<int64_t>(static_cast<int64_t>(std::ceil(rule.value * static_cast<double>(full))), 1, full);
    case RankKind::Params:
      return std::clamp<int64_t>(static_cast<int64_t>(std::floor(rule.value * static_cast<double>(rows) * static_cast<double>(cols) /
                                                                 static_cast<double>(rows + cols))),
                                 1, full);
    case RankKind::Energy: return -1;
  }
  return -1;
}

// The smallest r whose leading sigma^2 reach `share` of `total`; -1 if s falls short.
int64_t rank_for_energy(const VectorD& s, double total, double share) {
  double kept = 0;
  for (int64_t i = 0; i < s.size(); ++i) {
    kept += s(i) * s(i);
    if (kept >= share * total * (1 - 1e-12)) return i + 1;
  }
  return -1;
}

// The SVD's leading triplets, enough for the rule; sets `rank`.
Svd decompose(const MatrixD& m, const RankRule& rule, int64_t& rank) {
  const int64_t full = std::min(m.rows(), m.cols());
  rank = rank_before_svd(rule, m.rows(), m.cols());
  if (full <= kExactSvdLimit || rank > full / 2) {
    Svd s = svd_full(m);
    if (rank < 0) rank = std::max<int64_t>(1, rank_for_energy(s.s, s.s.squaredNorm(), rule.value));
    return s;
  }
  if (rank > 0) return svd_randomized(m, rank);
  // Energy on a large matrix: widen the randomized range until it holds the share.
  const double total = m.squaredNorm();
  for (int64_t k = 64; k <= full / 2; k *= 2) {
    Svd s = svd_randomized(m, k);
    rank = rank_for_energy(s.s, total, rule.value);
    if (rank > 0) return s;
  }
  Svd s = svd_full(m);
  rank = std::max<int64_t>(1, rank_for_energy(s.s, total, rule.value));
  return s;
}

}  // namespace

RankRule parse_rank_rule(const std::string& key, const std::string& value, const std::string& where) {
  RankRule r;
  if (key == "rank") {
    r.kind = RankKind::Fixed;
    const int64_t n = setting_integer(value, where + " rank");
    if (n < 1) throw_usage(where + ": rank must be at least 1, got " + value);
    r.value = static_cast<double>(n);
  } else if (key == "rank_fraction") {
    r.kind = RankKind::Fraction;
    r.value = setting_number(value, 1e-9, 1, where + " rank_fraction");
  } else if (key == "energy") {
    r.kind = RankKind::Energy;
    r.value = setting_number(value, 1e-9, 1, where + " energy");
  } else if (key == "params") {
    r.kind = RankKind::Params;
    r.value = setting_number(value, 1e-9, 1, where + " params");
  } else {
    throw_usage(where + ": '" + key + "' is not a rank setting (rank, rank_fraction, energy, params)");
  }
  return r;
}

std::string format_rank_rule(const RankRule& r) {
  char buf[48];
  switch (r.kind) {
    case RankKind::Fixed: std::snprintf(buf, sizeof buf, "rank=%g", r.value); break;
    case RankKind::Fraction: std::snprintf(buf, sizeof buf, "rank_fraction=%g", r.value); break;
    case RankKind::Energy: std::snprintf(buf, sizeof buf, "energy=%g", r.value); break;
    case RankKind::Params: std::snprintf(buf, sizeof buf, "params=%g", r.value); break;
  }
  return buf;
}

Factors factorize(const std::vector<float>& w, int64_t rows, int64_t cols, const RankRule& rule, const double* gram,
                  double damp, bool only_if_smaller) {
  if (static_cast<int64_t>(w.size()) != rows * cols || rows < 1 || cols < 1) throw_internal("factorize: bad matrix");
  MatrixD m(rows, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m(r, c) = w[static_cast<size_t>(r * cols + c)];
  MatrixD l;
  if (gram) {
    MatrixD h(cols, cols);
    double mean_diag = 0;
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j) h(i, j) = gram[i * cols + j];
    for (int64_t i = 0; i < cols; ++i) mean_diag += h(i, i) / static_cast<double>(cols);
    // Inputs that were always zero get a unit diagonal: their weights cannot matter.
    for (int64_t i = 0; i < cols; ++i) h(i, i) += h(i, i) == 0 ? 1.0 : damp * mean_diag;
    Eigen::LLT<MatrixD> llt(h);
    if (llt.info() != Eigen::Success) throw_bad_input("the layer's X^T X is not positive definite even with damping");
    l = llt.matrixL();
    m = m * l;
  }
  Factors f;
  int64_t rank = 0;
  const Svd s = decompose(m, rule, rank);
  const double total = m.squaredNorm();
  double kept = 0;
  for (int64_t i = 0; i < rank; ++i) kept += s.s(i) * s.s(i);
  f.energy_kept = total > 0 ? kept / total : 1.0;
  if (only_if_smaller && rank * (rows + cols) >= rows * cols) {
    f.note = "rank " + std::to_string(rank) + " of " + std::to_string(std::min(rows, cols)) +
             " saves nothing: r(m+n) >= m*n";
    return f;
  }
  f.rank = rank;
  // Split each singular value evenly, so both factors have similar ranges (they quantize alike).
  MatrixD a = s.u.leftCols(rank), b = s.v.leftCols(rank).transpose();
  for (int64_t i = 0; i < rank; ++i) {
    const double root = std::sqrt(s.s(i));
    a.col(i) *= root;
    b.row(i) *= root;
  }
  if (gram) b = l.transpose().triangularView<Eigen::Upper>().solve(b.transpose()).transpose();  // B L^-1
  f.first.resize(static_cast<size_t>(rank * cols));
  f.second.resize(static_cast<size_t>(rows * rank));
  for (int64_t i = 0; i < rank; ++i)
    for (int64_t c = 0; c < cols; ++c) f.first[static_cast<size_t>(i * cols + c)] = static_cast<float>(b(i, c));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < rank; ++i) f.second[static_cast<size_t>(r * rank + i)] = static_cast<float>(a(r, i));
  return f;
}

const std::vector<std::string>& lowrank_rule_keys() {
  static const std::vector<std::string> keys = {"rank", "rank_fraction", "energy", "params", "method", "damp", "keep"};
  return keys;
}

namespace {

struct LowrankAction {
  bool keep = false;
  RankRule rank;
  std::string method;
  double damp = 0.01;
};

LowrankAction resolve(const std::map<std::string, std::string>& s, const LowrankConfig& config, const std::string& label) {
  check_setting_keys(s, lowrank_rule_keys(), label);
  LowrankAction a;
  a.rank = config.rank;
  a.method = config.method;
  int rank_keys = 0;
  for (const auto& key : kRankKeys)
    if (auto it = s.find(key); it != s.end()) {
      a.rank = parse_rank_rule(key, it->second, label);
      ++rank_keys;
    }
  if (rank_keys > 1) throw_usage(label + ": give one of rank, rank_fraction, energy, params");
  if (auto it = s.find("keep"); it != s.end()) a.keep = setting_bool(it->second, label + " keep");
  if (auto it = s.find("method"); it != s.end()) a.method = it->second;
  if (auto it = s.find("damp"); it != s.end()) a.damp = setting_number(it->second, 0, 1, label + " damp");
  if (a.method != "svd" && a.method != "whiten") throw_usage(label + ": unknown method '" + a.method + "' (known: svd, whiten)");
  if (a.method == "whiten" && !a.keep && !config.stats && !config.expect_stats)
    throw_usage(label + ": method 'whiten' needs calibration data (--calib DIR or --calib-stats FILE)");
  return a;
}

Attribute int_attr(const std::string& name, int64_t v) { return Attribute::integer(name, v); }

void set_attr(Node& n, const Attribute& a) {
  for (auto& existing : n.attributes)
    if (existing.name == a.name) {
      existing = a;
      return;
    }
  n.attributes.push_back(a);
}

// Why a weight cannot be rewritten into two products, or "".
std::string unsupported(const Graph& g, const std::string& weight, const WeightUse& use) {
  if (use.op != "MatMul" && use.op != "Gemm") return "only MatMul and Gemm weights are factorized";
  int readers = 0;
  for (const Node& n : g.nodes)
    for (const auto& in : n.inputs) readers += in == weight;
  if (readers == 0) return "read inside an If, Loop or Scan body";
  if (readers != 1) return "read by " + std::to_string(readers) + " inputs";
  for (const Node& n : g.nodes)
    if (n.inputs.size() >= 2 && n.inputs[1] == weight) return "";
  return "not the second input of its node";
}

}  // namespace

void check_lowrank_config(const LowrankConfig& config) {
  resolve({}, config, "default");
  for (const auto& r : config.rules.rules) resolve(r.settings, config, r.label);
}

Model lowrank_model(const Model& model, const LowrankConfig& config, LowrankReport& report, const Progress& progress) {
  check_lowrank_config(config);
  Model out = model;
  runtime::constants_to_initializers(out);
  Graph& g = out.graph;
  const auto uses = find_weight_uses(g);
  std::vector<int64_t> rule_hits(config.rules.rules.size(), 0);
  std::vector<NamedTensor> kept_inits, new_inits;
  size_t done = 0;
  for (const auto& init : g.initializers) {
    auto use_it = uses.find(init.name);
    if (use_it == uses.end() || use_it->second.op == "Gather") {
      kept_inits.push_back(init);
      continue;
    }
    if (progress) progress(done++, uses.size(), init.name);
    const WeightUse& use = use_it->second;
    const Tensor& w = init.tensor;
    FactorizedTensor row{init.name, use.node, use.op, "default", "", w.shape(), 0, 0, w.numel(), w.numel(), 0, 0, -1, ""};
    const int match = config.rules.first_match(init.name, use.node, use.op);
    if (match >= 0) {
      row.rule = config.rules.rules[static_cast<size_t>(match)].label;
      ++rule_hits[static_cast<size_t>(match)];
    }
    auto leave = [&](const std::string& why) {
      row.note = why;
      report.tensors.push_back(row);
      report.params_before += row.params_before;
      report.params_after += row.params_after;
      kept_inits.push_back(init);
    };
    const LowrankAction a = resolve(match >= 0 ? config.rules.rules[static_cast<size_t>(match)].settings
                                               : std::map<std::string, std::string>{},
                                    config, row.rule);
    if (a.keep) {
      leave("kept by rule");
      continue;
    }
    if (w.dtype() != DType::F32 || w.is_quantized() || w.rank() != 2) {
      leave("not a 2-D float32 weight");
      continue;
    }
    if (match < 0 && w.numel() < config.min_elements) {
      leave("small tensor");
      continue;
    }
    if (const std::string why = unsupported(g, init.name, use); !why.empty()) {
      leave(why);
      continue;
    }
    int64_t rows = 0, cols = 0;
    const std::vector<float> m = quant::weight_rows(w, axis_of(use), rows, cols);
    row.full_rank = std::min(rows, cols);
    const calib::InputStats* s = layer_stats(config.stats, init.name, cols);
    if (a.method == "whiten" && (!s || !s->has_gram()))
      throw_usage("weight '" + init.name + "': whiten needs X^T X of its layer, which the calibration statistics lack");
    row.method = a.method;
    const Factors f = factorize(m, rows, cols, a.rank, a.method == "whiten" ? s->gram.data() : nullptr, a.damp);
    row.energy_kept = f.energy_kept;
    if (f.rank == 0) {
      leave(f.note);
      continue;
    }
    row.rank = f.rank;
    row.params_after = f.rank * (rows + cols);
    // The product A B in the weight's own layout, for the errors.
    std::vector<float> product(static_cast<size_t>(rows * cols), 0.0f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < f.rank; ++i) {
        const float ar = f.second[static_cast<size_t>(r * f.rank + i)];
        for (int64_t c = 0; c < cols; ++c) product[static_cast<size_t>(r * cols + c)] += ar * f.first[static_cast<size_t>(i * cols + c)];
      }
    const Tensor approx = weight_from_rows(product, w, axis_of(use));
    row.relative_error = relative_error(w, approx);
    if (s) row.output_error = output_error(w, approx, use, *s);
    // ONNX layouts: the input side [cols, rank] (B^T), the output side [rank, rows] (A^T).
    Tensor in_side(DType::F32, {cols, f.rank}), out_side(DType::F32, {f.rank, rows});
    for (int64_t i = 0; i < f.rank; ++i) {
      for (int64_t c = 0; c < cols; ++c) in_side.mutable_data<float>()[c * f.rank + i] = f.first[static_cast<size_t>(i * cols + c)];
      for (int64_t r = 0; r < rows; ++r) out_side.mutable_data<float>()[i * rows + r] = f.second[static_cast<size_t>(r * f.rank + i)];
    }
    const std::string in_name = init.name + "_lr_in", out_name = init.name + "_lr_out", mid = init.name + "_lr_mid";
    new_inits.push_back({in_name, in_side, {}});
    new_inits.push_back({out_name, out_side, {}});
    for (size_t k = 0; k < g.nodes.size(); ++k) {
      Node& n = g.nodes[k];
      if (n.inputs.size() < 2 || n.inputs[1] != init.name) continue;
      const Attribute* ta = n.find_attribute("transA");
      const bool trans_a = ta && ta->i != 0;
      Node first{n.name.empty() ? "" : n.name + "_lr_in", trans_a ? "Gemm" : "MatMul", "", {n.inputs[0], in_name}, {mid}, {}, {}};
      if (trans_a) first.attributes.push_back(int_attr("transA", 1));
      n.inputs[0] = mid;
      n.inputs[1] = out_name;
      if (n.op_type == "Gemm") {
        set_attr(n, int_attr("transA", 0));
        set_attr(n, int_attr("transB", 0));
      }
      g.nodes.insert(g.nodes.begin() + static_cast<std::ptrdiff_t>(k), first);
      break;
    }
    std::erase_if(g.inputs, [&](const ValueInfo& v) { return v.name == init.name; });
    report.tensors.push_back(row);
    report.params_before += row.params_before;
    report.params_after += row.params_after;
  }
  if (progress) progress(uses.size(), uses.size(), "");
  kept_inits.insert(kept_inits.end(), new_inits.begin(), new_inits.end());
  g.initializers = std::move(kept_inits);
  for (size_t i = 0; i < rule_hits.size(); ++i)
    if (rule_hits[i] == 0) report.warnings.push_back(config.rules.rules[i].label + " matched no weight");
  int64_t factorized = 0;
  for (const auto& t : report.tensors) factorized += t.rank > 0;
  require_changes(factorized,
                  uses.empty() ? std::string(kNoWeightFound)
                               : "lowrank factorized none of the " + std::to_string(uses.size()) +
                                     " weights it found (only 2-D MatMul and Gemm weights of at least --min-elements " +
                                     std::to_string(config.min_elements) + " unless a rule names them, and only where a lower rank is smaller)",
                  config.rules, config.allow_empty, report.warnings);
  return out;
}

}  // namespace slmopt::passes
