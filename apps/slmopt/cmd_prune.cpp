// slmopt prune MODEL -o OUT [--sparsity 0.5|2:4] [--method magnitude|wanda|sparsegpt]
// [--rules "*attn*=0.3,*fc*=0.7"] [--config rules.yaml]: zeroes the least
// important weights by per-layer rules; prints (or --json) every weight with
// the rule that chose its target, the sparsity reached and the error.
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "pass_cli.hpp"
#include "cli_common.hpp"
#include "config/rule_file.hpp"
#include "core/error.hpp"
#include "model_io.hpp"
#include "passes/prune.hpp"

namespace slmopt::cli {
namespace {

struct PruneCliOptions {
  bool allow_empty = false;
  std::string input, output, config, rules, sparsity, method, report, structured;
  bool global = false;
  int64_t min_elements = -1;
  CalibArgs calib;
};

passes::PruneConfig build_config(const PruneCliOptions& o) {
  passes::PruneConfig c;
  if (!o.config.empty()) {
    const auto file = config::read_rule_file(o.config);
    for (const auto& [key, value] : file.settings) {
      if (key == "sparsity") c.sparsity = value;
      else if (key == "method") c.method = value;
      else if (key == "scope") c.scope = value;
      else if (key == "min_elements") c.min_elements = setting_integer(value, o.config + ": min_elements");
      else throw_bad_input("unknown setting '" + key + "' (known: sparsity, method, scope, min_elements, rules)", o.config);
    }
    c.rules = file.rules;
  }
  c.rules = with_shorthand(c.rules, o.rules, "--rules", "sparsity", "sparsity");
  if (!o.sparsity.empty()) c.sparsity = o.sparsity;
  if (!o.method.empty()) c.method = o.method;
  if (o.global) c.scope = "global";
  c.structured = o.structured;
  if (o.min_elements >= 0) c.min_elements = o.min_elements;
  return c;
}

nlohmann::ordered_json report_json(const PruneCliOptions& o, const passes::PruneReport& r) {
  nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
  for (const auto& t : r.tensors)
    tensors.push_back({{"name", t.name},
                       {"node", t.node},
                       {"op", t.op},
                       {"shape", t.shape},
                       {"rule", t.rule},
                       {"target", t.target},
                       {"method", t.method},
                       {"elements", t.numel},
                       {"zeros", t.zeros},
                       {"sparsity", t.numel ? static_cast<double>(t.zeros) / static_cast<double>(t.numel) : 0.0},
                       {"relative_error", t.relative_error},
                       {"output_error", t.output_error < 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(t.output_error)}});
  nlohmann::ordered_json groups = nlohmann::ordered_json::array();
  for (const auto& gr : r.groups)
    groups.push_back({{"producers", gr.producers},
                      {"consumers", gr.consumers},
                      {"rule", gr.rule},
                      {"target", gr.target},
                      {"method", gr.method},
                      {"channels", gr.channels},
                      {"kept", gr.kept},
                      {"params_before", gr.params_before},
                      {"params_after", gr.params_after},
                      {"compensated_readers", gr.compensated},
                      {"why_not", gr.why_not}});
  return {{"input", o.input},
          {"output", o.output},
          {"weights", r.weights},
          {"zeros", r.zeros},
          {"sparsity", r.weights ? static_cast<double>(r.zeros) / static_cast<double>(r.weights) : 0.0},
          {"warnings", r.warnings},
          {"tensors", tensors},
          {"groups", groups}};
}

int64_t parameters(const Model& m) {
  int64_t n = 0;
  for (const auto& init : m.graph.initializers) n += init.tensor.numel();
  return n;
}

void print_groups(const passes::PruneReport& report, const Model& before_model, const Model& after_model,
                  const std::string& structured) {
  std::printf("%-40s %9s %10s %12s  %s\n", structured == "heads" ? "key/value heads of" : "channels of", "kept", "method",
              "parameters", "rule / why not");
  for (const auto& gr : report.groups) {
    std::string names;
    for (const auto& p : gr.producers) names += (names.empty() ? "" : " + ") + p;
    char kept[48];
    std::snprintf(kept, sizeof kept, "%lld/%lld", static_cast<long long>(gr.kept), static_cast<long long>(gr.channels));
    std::printf("%-40.40s %9s %10s %12s  %s\n", names.c_str(), kept, gr.why_not.empty() ? gr.method.c_str() : "-",
                with_thousands(gr.params_after).c_str(), gr.why_not.empty() ? gr.rule.c_str() : gr.why_not.c_str());
  }
  const int64_t before = parameters(before_model), after = parameters(after_model);
  std::printf("parameters: %s -> %s (%.2fx fewer)\n", with_thousands(before).c_str(), with_thousands(after).c_str(),
              after ? static_cast<double>(before) / static_cast<double>(after) : 0.0);
}

void run_prune(const PruneCliOptions& o, const GlobalOptions& global) {
  check_calib_args(o.calib);
  passes::PruneConfig config = build_config(o);
  config.expect_stats = o.calib.given();
  config.allow_empty = o.allow_empty;
  passes::check_prune_config(config);  // a bad rule fails before the model is read
  const Model model = load_model(o.input);
  const bool show = !global.quiet && !global.json && isatty(2);
  const calib::CalibStats stats = load_calibration(o.calib, model, o.input, show);
  if (o.calib.given()) config.stats = &stats;
  passes::PruneReport report;
  Model out = passes::prune_model(model, config, report, progress_line("prune", show));
  clear_progress(show);
  out.provenance.push_back({"prune", (config.structured.empty() ? "" : "structured=" + config.structured + " ") + "sparsity=" + config.sparsity + " method=" + config.method + " scope=" + config.scope +
                                         (o.config.empty() ? "" : " config=" + o.config) +
                                         (o.rules.empty() ? "" : " rules=" + o.rules) + o.calib.describe(),
                            ""});
  save_model(out, o.output);
  const auto doc = report_json(o, report);
  if (!emit_pass_result(global, o.report, doc, report.warnings)) return;
  if (!config.structured.empty()) {
    print_groups(report, model, out, config.structured);
    std::printf("wrote %s\n", o.output.c_str());
    return;
  }
  std::printf("%-40s %-6s %-10s %-9s %8s %10s %10s  %s\n", "tensor", "op", "target", "method", "zeros", "rel.error",
              "out.error", "rule");
  for (const auto& t : report.tensors) {
    char out_error[32] = "-";
    if (t.output_error >= 0) std::snprintf(out_error, sizeof out_error, "%.2e", t.output_error);
    const double sparsity = t.numel ? 100.0 * static_cast<double>(t.zeros) / static_cast<double>(t.numel) : 0.0;
    std::printf("%-40.40s %-6s %-10s %-9s %7.2f%% %10.2e %10s  %s\n", t.name.c_str(), t.op.c_str(),
                t.target.empty() ? "dense" : t.target.c_str(), t.method.empty() ? "-" : t.method.c_str(), sparsity,
                t.relative_error, out_error, t.rule.c_str());
  }
  std::printf("weights: %s of %s zero (%.2f%%); wrote %s\n", with_thousands(report.zeros).c_str(),
              with_thousands(report.weights).c_str(),
              report.weights ? 100.0 * static_cast<double>(report.zeros) / static_cast<double>(report.weights) : 0.0,
              o.output.c_str());
}

}  // namespace

void setup_prune(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<PruneCliOptions>();
  auto* cmd = app.add_subcommand("prune", "Zero the least important weights by per-layer rules");
  cmd->add_option("input", o->input, "Input model (.onnx, .slm, safetensors)")->required();
  cmd->add_option("-o,--output", o->output, "Output model (.onnx or .slm)")->required();
  cmd->add_option("--sparsity", o->sparsity, "Share of weights to zero (0.5), or N:M such as 2:4, for weights no rule matches");
  cmd->add_option("--method", o->method, "magnitude (default), wanda or sparsegpt (both need calibration)");
  cmd->add_option("--structured", o->structured,
                  "Remove whole units and shrink the tensors: channels (every layer), ffn (MatMul/Gemm neurons) or heads (attention heads of a Llama/Mistral/Qwen2/GPT-2 decoder)");
  cmd->add_flag("--global", o->global, "One magnitude threshold across the layers a rule matches, not one per layer");
  cmd->add_option("--rules", o->rules, "Shorthand rules, first match wins: \"*attn*=0.3,*fc*=2:4\"");
  cmd->add_option("--config", o->config, "Rule file (YAML or JSON), see docs/prune.md");
  add_calib_options(*cmd, o->calib);
  cmd->add_option("--min-elements", o->min_elements, "Weights smaller than this stay dense unless a rule matches (1024)");
  cmd->add_option("--report", o->report, "Write the per-tensor report as JSON");
  cmd->add_flag("--allow-empty", o->allow_empty, "Write the model even when no weight was pruned (default: exit 2)");
  cmd->callback([o, &global] { run_prune(*o, global); });
}

}  // namespace slmopt::cli
