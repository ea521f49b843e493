// slmopt quantize MODEL -o OUT.slm [--config rules.yaml] [--bits "embed*=8,*=4"]:
// post-training weight quantization by per-layer rules; prints (or --json)
// every weight with the rule that chose its scheme, bits per weight and error.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>

#include "pass_cli.hpp"
#include "cli_common.hpp"
#include "config/rule_file.hpp"
#include "lm/decoder_runner.hpp"
#include "lm_text.hpp"
#include "model_io.hpp"
#include "passes/int8_activations.hpp"
#include "passes/quantize.hpp"
#include "train/fake_quantize.hpp"

namespace slmopt::cli {
namespace {

struct QuantizeCliOptions {
  std::string input, output, config, bits, default_spec, algorithm, report, activations;
  CalibArgs calib;
  std::string observer = "mse";
  int64_t min_elements = -1;
  bool dense = false;
  bool allow_empty = false;
  int64_t finetune = 0;  // steps of quantization-aware distillation (train/distill.hpp)
  double finetune_lr = 1e-4;
};

passes::QuantizeConfig build_config(const QuantizeCliOptions& o) {
  passes::QuantizeConfig c;
  if (!o.config.empty()) {
    const auto file = config::read_rule_file(o.config);
    for (const auto& [key, value] : file.settings) {
      if (key == "default") c.default_spec = value;
      else if (key == "algorithm") c.algorithm = value;
      else if (key == "min_elements") {
        try {
          c.min_elements = std::stoll(value);
        } catch (const std::exception&) {
          throw_bad_input("min_elements must be an integer, got '" + value + "'", o.config);
        }
      } else {
        throw_bad_input("unknown setting '" + key + "' (known: default, algorithm, min_elements, rules)", o.config);
      }
    }
    c.rules = file.rules;
  }
  c.rules = with_shorthand(c.rules, o.bits, "--bits", "bits", "scheme");
  if (!o.default_spec.empty()) c.default_spec = o.default_spec;
  if (!o.algorithm.empty()) c.algorithm = o.algorithm;
  if (o.min_elements >= 0) c.min_elements = o.min_elements;
  return c;
}

nlohmann::ordered_json report_json(const QuantizeCliOptions& o, const passes::QuantizeReport& r,
                                   const train::DistillReport* finetune) {
  nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
  for (const auto& t : r.tensors)
    tensors.push_back({{"name", t.name},
                       {"node", t.node},
                       {"op", t.op},
                       {"shape", t.shape},
                       {"rule", t.rule},
                       {"action", t.action},
                       {"algorithm", t.algorithm},
                       {"bits_per_weight", t.bits_per_weight},
                       {"relative_error", t.relative_error},
                       {"output_error", t.output_error < 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(t.output_error)}});
  nlohmann::ordered_json doc = {{"input", o.input},         {"output", o.output},        {"weight_bytes_before", r.bytes_before},
                                 {"weight_bytes_after", r.bytes_after}, {"warnings", r.warnings}};
  if (finetune)
    doc["finetune"] = {{"steps", finetune->steps}, {"learning_rate", o.finetune_lr},
                       {"first_kl", finetune->first_loss}, {"last_kl", finetune->last_loss}};
  doc["tensors"] = tensors;
  return doc;
}

void run_int8(const QuantizeCliOptions& o, const GlobalOptions& global, const Model& model, const calib::CalibStats& stats) {
  passes::Int8Report report;
  const calib::ObserverKind observer = calib::parse_observer(o.observer);
  RuleSet rules;
  if (!o.config.empty()) {
    const auto file = config::read_rule_file(o.config);
    if (!file.settings.empty()) throw_bad_input("with --activations int8 a rule file holds only rules (observer, keep)", o.config);
    rules = file.rules;
  }
  Model out = passes::quantize_activations_int8(model, stats, report, observer, rules, o.allow_empty);
  out.provenance.push_back({"quantize", "activations=int8 observer=" + o.observer + o.calib.describe(), ""});
  save_model(out, o.output);
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (const auto& l : report.layers)
    layers.push_back({{"node", l.node}, {"op", l.op}, {"input_scale", l.input_scale}, {"input_zero_point", l.input_zero},
                      {"output_scale", l.output_scale}, {"output_zero_point", l.output_zero}, {"observer", l.observer},
                      {"rule", l.rule}});
  const nlohmann::ordered_json doc = {{"input", o.input}, {"output", o.output}, {"activations", "int8"}, {"observer", o.observer},
                                      {"layers", layers}, {"left_float", report.skipped}};
  if (!emit_pass_result(global, o.report, doc, {})) return;
  std::printf("%-40s %-8s %12s %5s %12s %5s  %s\n", "layer", "op", "in.scale", "in.zp", "out.scale", "out.zp", "observer");
  for (const auto& l : report.layers)
    std::printf("%-40.40s %-8s %12.4g %5d %12.4g %5d  %s%s\n", l.node.c_str(), l.op.c_str(), l.input_scale, l.input_zero,
                l.output_scale, l.output_zero, l.observer.c_str(), l.rule.empty() ? "" : (" (" + l.rule + ")").c_str());
  for (const auto& s : report.skipped) std::printf("left float: %s\n", s.c_str());
  std::printf("%zu layers in int8 (QLinearConv/QLinearMatMul); wrote %s\n", report.layers.size(), o.output.c_str());
}

// Quantization-aware distillation: trains `model`'s weights for the plan
// `config` gives them, on windows of the calibration text.
train::DistillReport finetune(const QuantizeCliOptions& o, Model& model, const passes::QuantizeConfig& config, bool show) {
  train::LlamaWeights w = train::llama_weights(model);
  const train::FakeQuantPlan plan = train::plan_fake_quantize(model, w, config, o.finetune);
  const lm::DecoderRunner probe(model);
  const auto windows = text_windows(model, o.input, o.calib.dir, o.calib.tokenizer, o.calib.context, 0, probe.vocab());
  train::DistillOptions options;
  options.steps = o.finetune;
  options.learning_rate = o.finetune_lr;
  options.window = std::min<int64_t>(128, o.calib.context);
  options.freeze_at = plan.freeze_at;
  const train::DistillReport r = train::distill(w, windows, plan.fake_quantize, options, [&](int64_t step, int64_t steps, double kl) {
    if (show) std::fprintf(stderr, "\rfinetune %lld/%lld  KL %.4f", static_cast<long long>(step), static_cast<long long>(steps), kl);
  });
  if (show) std::fprintf(stderr, "\r%-50s\r", "");
  train::write_llama_weights(model, w);
  return r;
}

void run_quantize(const QuantizeCliOptions& o, const GlobalOptions& global) {
  if (!o.output.ends_with(".slm") && !o.output.ends_with(".onnx"))
    throw_usage("quantized models are written as .slm, or as .onnx with DequantizeLinear where exact (got '" + o.output + "')");
  check_calib_args(o.calib);
  if (!o.activations.empty()) {
    if (o.activations != "int8") throw_usage("--activations takes int8, got '" + o.activations + "'");
    calib::parse_observer(o.observer);
    if (!o.bits.empty() || !o.algorithm.empty() || !o.default_spec.empty())
      throw_usage("--activations int8 stores every converted layer's weights as int8 per channel; --bits, "
                  "--default and --algorithm do not apply (--config rules may set observer or keep: f32)");
    if (!o.calib.given()) throw_usage("--activations int8 needs calibration data (--calib or --calib-stats)");
  }
  passes::QuantizeConfig config = build_config(o);
  config.expect_stats = o.calib.given() && o.finetune == 0;
  config.sparse = !o.dense;
  config.allow_empty = o.allow_empty;
  if (o.finetune < 0) throw_usage("--finetune takes a number of steps, got " + std::to_string(o.finetune));
  if (o.finetune > 0 && (!o.activations.empty() || !(o.calib.dir.ends_with(".txt") || o.calib.dir.ends_with(".npy"))))
    throw_usage("--finetune distills on a language model's text: it needs --calib FILE.txt (or .npy token ids)");
  if (o.finetune > 0 && (config.algorithm == "gptq" || config.algorithm == "awq"))
    throw_usage("--finetune trains the weights for rtn or mse rounding; it does not combine with " + config.algorithm);
  passes::check_quantize_config(config);  // a bad rule fails before the model is read
  Model model = load_model(o.input);
  const bool show = !global.quiet && !global.json && isatty(2);
  std::optional<train::DistillReport> distilled;
  if (o.finetune > 0) distilled = finetune(o, model, config, show);
  const calib::CalibStats stats = o.finetune > 0 ? calib::CalibStats{} : load_calibration(o.calib, model, o.input, show);
  if (config.expect_stats) config.stats = &stats;
  if (!o.activations.empty()) {
    run_int8(o, global, model, stats);
    return;
  }
  passes::QuantizeReport report;
  Model out = passes::quantize_model(model, config, report, progress_line("quantize", show));
  clear_progress(show);
  out.provenance.push_back({"quantize", "default=" + config.default_spec + " algorithm=" + config.algorithm +
                                            (o.config.empty() ? "" : " config=" + o.config) +
                                            (o.bits.empty() ? "" : " bits=" + o.bits) +
                                            (o.finetune > 0 ? " finetune=" + std::to_string(o.finetune) : "") +
                                            o.calib.describe(),
                            ""});
  save_model(out, o.output);
  const auto doc = report_json(o, report, distilled ? &*distilled : nullptr);
  if (!emit_pass_result(global, o.report, doc, report.warnings)) return;
  std::printf("%-40s %-8s %-22s %7s %10s %10s  %s\n", "tensor", "op", "scheme", "bits/w", "rel.error", "out.error",
              "rule");
  for (const auto& t : report.tensors) {
    char out_error[32] = "-";
    if (t.output_error >= 0) std::snprintf(out_error, sizeof out_error, "%.2e", t.output_error);
    std::printf("%-40.40s %-8s %-22s %7.3f %10.2e %10s  %s\n", t.name.c_str(), t.op.c_str(), t.action.c_str(),
                t.bits_per_weight, t.relative_error, out_error, t.rule.c_str());
  }
  std::printf("weights: %s -> %s (%.2fx smaller); wrote %s\n", human_bytes(report.bytes_before).c_str(),
              human_bytes(report.bytes_after).c_str(),
              report.bytes_after ? static_cast<double>(report.bytes_before) / static_cast<double>(report.bytes_after) : 0.0,
              o.output.c_str());
}

}  // namespace

void setup_quantize(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<QuantizeCliOptions>();
  auto* cmd = app.add_subcommand("quantize", "Quantize weights by per-layer rules (writes .slm)");
  cmd->add_option("input", o->input, "Input model (.onnx, .slm, safetensors)")->required();
  cmd->add_option("-o,--output", o->output, "Output .slm (any scheme) or .onnx (QDQ: symmetric int, ternary, binary)")->required();
  cmd->add_option("--config", o->config, "Rule file (YAML or JSON), see docs/quantize.md");
  cmd->add_option("--bits", o->bits, "Shorthand rules, first match wins: \"embed*=8,*attn*=4,*=q4\"");
  cmd->add_option("--default", o->default_spec, "Scheme for weights no rule matches (default q4)");
  cmd->add_option("--algorithm", o->algorithm,
                  "rtn (round to nearest), mse (scale search, default), gptq or awq (both need calibration)");
  add_calib_options(*cmd, o->calib);
  cmd->add_option("--activations", o->activations,
                  "int8: integer Conv/MatMul (QLinearConv, QLinearMatMul) with calibrated activation scales");
  cmd->add_option("--observer", o->observer, "Activation ranges for --activations int8: minmax, percentile, mse (default) or kl");
  cmd->add_option("--min-elements", o->min_elements, "Weights smaller than this stay float unless a rule matches (1024)");
  cmd->add_option("--report", o->report, "Write the per-tensor report as JSON");
  cmd->add_option("--finetune", o->finetune,
                  "Steps of quantization-aware distillation on the --calib text before quantizing (Llama decoders; rtn or mse)");
  cmd->add_option("--finetune-lr", o->finetune_lr, "Peak learning rate of --finetune (1e-4)");
  cmd->add_flag("--allow-empty", o->allow_empty, "Write the model even when no weight (or layer) was quantized (default: exit 2)");
  cmd->add_flag("--dense", o->dense, "Store pruned weights dense (default: sparse, codes of the kept weights and a bitmap, where smaller)");
  cmd->callback([o, &global] { run_quantize(*o, global); });
}

}  // namespace slmopt::cli
