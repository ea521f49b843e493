// slmopt lowrank MODEL -o OUT [--energy 0.95 | --rank N | --rank-fraction F |
// --params F] [--method svd|whiten] [--rules "*fc1*=64,*fc2*=0.9"]: replaces
// MatMul/Gemm weights by two thinner products where that saves parameters;
// prints (or --json) every weight with its rank, parameters and error.
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "pass_cli.hpp"
#include "cli_common.hpp"
#include "config/rule_file.hpp"
#include "core/error.hpp"
#include "model_io.hpp"
#include "passes/lowrank.hpp"

namespace slmopt::cli {
namespace {

struct LowrankCliOptions {
  bool allow_empty = false;
  std::string input, output, config, rules, method, report;
  std::string rank, rank_fraction, energy, params;
  int64_t min_elements = -1;
  CalibArgs calib;
};

passes::LowrankConfig build_config(const LowrankCliOptions& o) {
  passes::LowrankConfig c;
  if (!o.config.empty()) {
    const auto file = config::read_rule_file(o.config);
    for (const auto& [key, value] : file.settings) {
      if (key == "rank" || key == "rank_fraction" || key == "energy" || key == "params")
        c.rank = passes::parse_rank_rule(key, value, o.config);
      else if (key == "method") c.method = value;
      else if (key == "min_elements") c.min_elements = setting_integer(value, o.config + ": min_elements");
      else
        throw_bad_input("unknown setting '" + key + "' (known: rank, rank_fraction, energy, params, method, min_elements, rules)",
                        o.config);
    }
    c.rules = file.rules;
  }
  // A whole number is a rank, a fraction the energy to keep.
  c.rules = with_shorthand(c.rules, o.rules, "--rules", "rank", "energy");
  int given = 0;
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"rank", o.rank}, {"rank_fraction", o.rank_fraction}, {"energy", o.energy}, {"params", o.params}})
    if (!value.empty()) {
      c.rank = passes::parse_rank_rule(key, value, "--" + key);
      ++given;
    }
  if (given > 1) throw_usage("give one of --rank, --rank-fraction, --energy, --params");
  if (!o.method.empty()) c.method = o.method;
  if (o.min_elements >= 0) c.min_elements = o.min_elements;
  return c;
}

nlohmann::ordered_json report_json(const LowrankCliOptions& o, const passes::LowrankReport& r) {
  nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
  for (const auto& t : r.tensors)
    tensors.push_back({{"name", t.name},
                       {"node", t.node},
                       {"op", t.op},
                       {"shape", t.shape},
                       {"rule", t.rule},
                       {"method", t.method},
                       {"rank", t.rank},
                       {"full_rank", t.full_rank},
                       {"params_before", t.params_before},
                       {"params_after", t.params_after},
                       {"energy_kept", t.energy_kept},
                       {"relative_error", t.relative_error},
                       {"output_error", t.output_error < 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(t.output_error)},
                       {"note", t.note}});
  return {{"input", o.input},
          {"output", o.output},
          {"params_before", r.params_before},
          {"params_after", r.params_after},
          {"warnings", r.warnings},
          {"tensors", tensors}};
}

void run_lowrank(const LowrankCliOptions& o, const GlobalOptions& global) {
  check_calib_args(o.calib);
  passes::LowrankConfig config = build_config(o);
  config.expect_stats = o.calib.given();
  config.allow_empty = o.allow_empty;
  passes::check_lowrank_config(config);
  const Model model = load_model(o.input);
  const bool show = !global.quiet && !global.json && isatty(2);
  const calib::CalibStats stats = load_calibration(o.calib, model, o.input, show);
  if (o.calib.given()) config.stats = &stats;
  passes::LowrankReport report;
  Model out = passes::lowrank_model(model, config, report, progress_line("lowrank", show));
  clear_progress(show);
  out.provenance.push_back({"lowrank", passes::format_rank_rule(config.rank) + " method=" + config.method +
                                           (o.config.empty() ? "" : " config=" + o.config) +
                                           (o.rules.empty() ? "" : " rules=" + o.rules) + o.calib.describe(),
                            ""});
  save_model(out, o.output);
  const auto doc = report_json(o, report);
  if (!emit_pass_result(global, o.report, doc, report.warnings)) return;
  std::printf("%-40s %-6s %-14s %9s %9s %8s %10s %10s  %s\n", "tensor", "op", "shape", "rank", "params", "energy",
              "rel.error", "out.error", "rule / note");
  for (const auto& t : report.tensors) {
    std::string shape;
    for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? "x" : "") + std::to_string(t.shape[i]);
    char rank[32] = "-", energy[32] = "-", rel[32] = "-", out_error[32] = "-";
    if (t.rank) {
      std::snprintf(rank, sizeof rank, "%lld/%lld", static_cast<long long>(t.rank), static_cast<long long>(t.full_rank));
      std::snprintf(energy, sizeof energy, "%.4f", t.energy_kept);
      std::snprintf(rel, sizeof rel, "%.2e", t.relative_error);
    }
    if (t.output_error >= 0) std::snprintf(out_error, sizeof out_error, "%.2e", t.output_error);
    std::printf("%-40.40s %-6s %-14s %9s %9lld %8s %10s %10s  %s\n", t.name.c_str(), t.op.c_str(), shape.c_str(), rank,
                static_cast<long long>(t.params_after), energy, rel, out_error,
                t.note.empty() ? t.rule.c_str() : (t.rule + ": " + t.note).c_str());
  }
  std::printf("weights: %s -> %s parameters (%.2fx fewer); wrote %s\n", with_thousands(report.params_before).c_str(),
              with_thousands(report.params_after).c_str(),
              report.params_after ? static_cast<double>(report.params_before) / static_cast<double>(report.params_after) : 0.0,
              o.output.c_str());
}

}  // namespace

void setup_lowrank(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<LowrankCliOptions>();
  auto* cmd = app.add_subcommand("lowrank", "Factorize MatMul/Gemm weights into two thinner products (truncated SVD)");
  cmd->add_option("input", o->input, "Input model (.onnx, .slm, safetensors)")->required();
  cmd->add_option("-o,--output", o->output, "Output model (.onnx or .slm)")->required();
  cmd->add_option("--energy", o->energy, "Keep this share of the squared singular values (default 0.95)");
  cmd->add_option("--rank", o->rank, "Fixed rank");
  cmd->add_option("--rank-fraction", o->rank_fraction, "Rank as a fraction of min(rows, cols)");
  cmd->add_option("--params", o->params, "Parameter budget: at most this fraction of the weight's parameters");
  cmd->add_option("--method", o->method, "svd (default) or whiten (activation-aware, needs calibration)");
  cmd->add_option("--rules", o->rules, "Shorthand rules, first match wins: \"*fc1*=64,*=0.9\" (rank, or energy)");
  cmd->add_option("--config", o->config, "Rule file (YAML or JSON), see docs/lowrank.md");
  add_calib_options(*cmd, o->calib);
  cmd->add_option("--min-elements", o->min_elements, "Weights smaller than this stay as they are unless a rule matches (4096)");
  cmd->add_option("--report", o->report, "Write the per-tensor report as JSON");
  cmd->add_flag("--allow-empty", o->allow_empty, "Write the model even when no weight was factorized (default: exit 2)");
  cmd->callback([o, &global] { run_lowrank(*o, global); });
}

}  // namespace slmopt::cli
