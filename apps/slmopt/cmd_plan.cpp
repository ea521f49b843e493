// slmopt plan MODEL -o bits.yaml --budget 300KiB (or --bpw 4.5, --flash 4MiB):
// measures how much each weight's treatment costs in output error, chooses the
// treatments of least summed error that fit the budget (multiple-choice
// knapsack), confirms the choice by quantizing and running the whole model,
// and writes the rule file `slmopt quantize --config` builds it from, with a
// report against uniform and hand-mixed configurations and an error-vs-size curve.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>

#include "blob/blob_io.hpp"
#include "cli_common.hpp"
#include "common/sha256.hpp"
#include "config/rule_file.hpp"
#include "core/atomic_file.hpp"
#include "device_budget.hpp"
#include "lm/decoder_runner.hpp"
#include "lm_text.hpp"
#include "model_io.hpp"
#include "pass_cli.hpp"
#include "plan/allocate.hpp"
#include "plan/curve_svg.hpp"
#include "samples.hpp"

namespace slmopt::cli {
namespace {

struct PlanCliOptions {
  std::string input, output, budget, flash, ram, cache, report, curve, write;
  double bpw = 0;
  std::vector<std::string> candidates = {"f16", "q8", "q6", "q5", "q4", "q3", "q2"};
  std::string algorithm = "mse";
  std::string metric = "auto";
  std::string sensitivity = "auto";
  int64_t min_elements = 1024;
  CalibArgs calib;
  DataOptions data;
  std::string text;  // the tokenizer is --tokenizer of the calibration options
  int64_t context = 0, windows = 4;
  int points = 9;
  bool no_confirm = false;
  uint32_t alignment = 64;
  std::string sector = "4096";
};

// Above this many planned weights' elements, --sensitivity auto runs each
// weight once (scaled) instead of once per treatment.
constexpr uint64_t kScaledAbove = 20'000'000;

// The quantization scheme of median size: the treatment scaled sensitivities
// are measured at (between the regimes where errors are tiny and where they
// stop growing with the square of the perturbation).
size_t median_scheme(const plan::Variants& v) {
  std::vector<std::pair<uint64_t, size_t>> schemes;
  for (size_t t = 0; t < v.treatments().size(); ++t)
    if (!plan::is_float_treatment(v.treatments()[t])) {
      uint64_t bytes = 0;
      for (size_t w = 0; w < v.weights().size(); ++w) bytes += v.bytes(w, t);
      schemes.push_back({bytes, t});
    }
  std::sort(schemes.begin(), schemes.end());
  return schemes[schemes.size() / 2].second;
}

std::string candidate_list(const std::vector<std::string>& candidates) {
  std::string s;
  for (const auto& c : candidates) s += (s.empty() ? "" : ",") + c;
  return s;
}

// Everything the sensitivity numbers depend on, so a cache made for other
// data, options or weights is never reused.
std::string cache_key(const PlanCliOptions& o, const Model& model) {
  std::string key = "model=" + plan::model_digest(model) + " candidates=" + candidate_list(o.candidates) + " algorithm=" + o.algorithm +
                    " min_elements=" + std::to_string(o.min_elements) + " metric=" + o.metric + " sensitivity=" + o.sensitivity;
  if (!o.calib.stats.empty()) key += " calib-stats=" + sha256_file_hex(o.calib.stats);
  if (!o.calib.dir.empty()) key += " calib=" + o.calib.dir + " ctx=" + std::to_string(o.calib.context);
  if (!o.text.empty())
    key += " text=" + sha256_file_hex(o.text) + " ctx=" + std::to_string(o.context) + " windows=" + std::to_string(o.windows);
  if (!o.data.dir.empty()) key += " data=" + o.data.dir;
  for (const auto& i : o.data.inputs) key += " input=" + i;
  if (o.data.random > 0) key += " random=" + std::to_string(o.data.random) + " seed=" + std::to_string(o.data.seed);
  return key;
}

std::unique_ptr<plan::ErrorMeasure> make_measure(const PlanCliOptions& o, const Model& model) {
  if (!o.text.empty()) {
    const lm::DecoderRunner probe(model);
    auto windows = text_windows(model, o.input, o.text, o.calib.tokenizer, o.context, 0, probe.vocab());
    if (o.windows > 0 && windows.size() > static_cast<size_t>(o.windows)) windows.resize(static_cast<size_t>(o.windows));
    if (o.metric != "auto" && o.metric != "kl") throw_usage("a language model is measured by kl (--metric " + o.metric + ")");
    return plan::language_model_measure(model, std::move(windows));
  }
  const runtime::Session probe(model);
  return plan::output_error_measure(model, load_requested_samples(o.data, probe.feed_inputs()), o.metric);
}

// Plans are measured once: the table keeps every whole plan's error by its signature.
class PlanMeasurer {
 public:
  PlanMeasurer(plan::SensitivityTable& table, const plan::ErrorMeasure& measure, std::function<const plan::Variants&()> variants)
      : table_(table), measure_(measure), variants_(std::move(variants)) {}
  double operator()(const plan::Plan& p) {
    const std::string sig = plan::plan_signature(p.pick);
    if (auto it = table_.measured.find(sig); it != table_.measured.end()) return it->second;
    const double e = measure_.error(variants_().assemble(p.pick));
    table_.measured[sig] = e;
    return e;
  }
  // Measures the plans not measured yet, side by side (plan::measure_many).
  void prefetch(const std::vector<plan::Plan>& plans) {
    std::vector<const plan::Plan*> missing;
    std::set<std::string> seen;
    for (const auto& p : plans) {
      const std::string sig = plan::plan_signature(p.pick);
      if (!table_.measured.count(sig) && seen.insert(sig).second) missing.push_back(&p);
    }
    if (missing.empty()) return;
    const plan::Variants& v = variants_();  // made before the threads start
    const auto errors = plan::measure_many(measure_, missing.size(), [&](size_t i) { return v.assemble(missing[i]->pick); });
    for (size_t i = 0; i < missing.size(); ++i) table_.measured[plan::plan_signature(missing[i]->pick)] = errors[i];
  }

 private:
  plan::SensitivityTable& table_;
  const plan::ErrorMeasure& measure_;
  std::function<const plan::Variants&()> variants_;
};

uint64_t flash_bytes_of(const Model& model, const PlanCliOptions& o, uint64_t sector) {
  blob::BlobOptions bo;
  bo.alignment = o.alignment;
  return (blob::blob_size(model, bo) + sector - 1) / sector * sector;
}

nlohmann::ordered_json plan_json(const plan::SensitivityTable& table, const plan::Plan& p, std::optional<double> measured) {
  return {{"name", p.name},
          {"bytes", p.bytes},
          {"predicted", plan::displayed_error(table.metric, p.predicted)},
          {"measured", measured ? nlohmann::ordered_json(plan::displayed_error(table.metric, *measured))
                                : nlohmann::ordered_json()}};
}

void run_plan(const PlanCliOptions& o, const GlobalOptions& global) {
  const int budgets = !o.budget.empty() + (o.bpw > 0) + !o.flash.empty();
  if (budgets != 1) throw_usage("give one budget: --budget BYTES, --bpw BITS or --flash BYTES");
  if (!o.output.ends_with(".yaml") && !o.output.ends_with(".yml") && !o.output.ends_with(".json"))
    throw_usage("the plan is a rule file for slmopt quantize --config: -o must end in .yaml or .json (got '" + o.output + "')");
  if (!o.text.empty() && (!o.data.dir.empty() || !o.data.inputs.empty() || o.data.random > 0))
    throw_usage("--text measures a language model; give it without --data, --input or --random");
  if (o.text.empty() && o.data.dir.empty() && o.data.inputs.empty() && o.data.random <= 0)
    throw_usage("the planner measures errors on data: give --data DIR, --input NAME=FILE, --random N, or --text FILE");
  if (o.points < 0 || o.points > 64) throw_usage("--points takes 0 to 64");
  if (o.sensitivity != "auto" && o.sensitivity != "full" && o.sensitivity != "scaled")
    throw_usage("--sensitivity takes auto, full or scaled, got '" + o.sensitivity + "'");
  const std::vector<std::string>& treatments = o.candidates;
  plan::check_treatments(treatments);
  check_calib_args(o.calib);
  if ((o.algorithm == "gptq" || o.algorithm == "awq") && !o.calib.given())
    throw_usage("--algorithm " + o.algorithm + " needs calibration statistics (--calib or --calib-stats)");
  const uint64_t sector = parse_size(o.sector, "--sector");
  if (sector == 0) throw_usage("--sector must be at least one byte");
  blob::check_alignment(o.alignment);  // the blob writer's own check, before the sensitivity run
  if (!o.write.empty() && !o.write.ends_with(".slm") && !o.write.ends_with(".onnx"))
    throw_usage("--write names the planned, quantized model: it must end in .slm or .onnx (got '" + o.write + "')");
  const uint64_t ram = o.ram.empty() ? 0 : parse_size(o.ram, "--ram");  // 0: no RAM budget
  // Parsed before any work: a typo must not cost the sensitivity measurement.
  const uint64_t budget_option = o.budget.empty() ? 0 : parse_size(o.budget, "--budget");
  const uint64_t flash_option = o.flash.empty() ? 0 : parse_size(o.flash, "--flash");

  const bool show = !global.quiet && !global.json && isatty(2);
  const Model model = load_model(o.input);
  const calib::CalibStats stats = load_calibration(o.calib, model, o.input, show);
  passes::QuantizeConfig base;
  base.algorithm = o.algorithm;
  base.min_elements = o.min_elements;
  base.expect_stats = o.calib.given();
  if (o.calib.given()) base.stats = &stats;

  // The quantized variants are made only when something must be measured.
  std::unique_ptr<plan::Variants> variants;
  const auto get_variants = [&]() -> const plan::Variants& {
    if (!variants) {
      variants = std::make_unique<plan::Variants>(model, treatments, base, [&](const std::string& t) {
        if (show) std::fprintf(stderr, "\rplan: quantizing every weight to %-20s", t.c_str());
      });
      clear_progress(show);
    }
    return *variants;
  };
  const auto measure = make_measure(o, model);
  const std::string cache_path = o.cache.empty() ? o.output + ".sensitivity.json" : o.cache;
  const std::string key = cache_key(o, model);
  auto cached = plan::read_sensitivity_cache(cache_path, key);
  const bool from_cache = cached.has_value();
  plan::SensitivityTable table;
  if (cached) {
    table = std::move(*cached);
  } else {
    const auto& v = get_variants();
    uint64_t planned_elements = 0;
    for (const auto& w : v.weights()) planned_elements += static_cast<uint64_t>(w.numel);
    const bool scaled = o.sensitivity == "scaled" || (o.sensitivity == "auto" && planned_elements > kScaledAbove);
    table = plan::measure_sensitivity(
        v, *measure, key,
        [&](size_t done, size_t total, const std::string& what) {
          if (show) std::fprintf(stderr, "\rplan: sensitivity %zu/%zu %-50.50s", done, total, what.c_str());
        },
        scaled, median_scheme(v));
    clear_progress(show);
    plan::write_sensitivity_cache(cache_path, table);
  }
  PlanMeasurer measured_error(table, *measure, get_variants);

  // The budget in bytes of all weights.
  uint64_t total_elements = 0;
  for (const auto& init : model.graph.initializers) total_elements += static_cast<uint64_t>(init.tensor.numel());
  uint64_t budget = 0;
  if (!o.budget.empty()) budget = budget_option;
  if (o.bpw > 0) budget = static_cast<uint64_t>(std::floor(o.bpw * static_cast<double>(total_elements) / 8.0));
  plan::Plan chosen;
  if (!o.flash.empty()) {
    // The blob adds headers, tables and alignment to the weights: plan the
    // weights for what is left, build the blob, and shrink until it fits.
    const uint64_t flash = flash_option;
    budget = flash;
    for (int round = 0;; ++round) {
      chosen = plan::plan_for_budget(table, budget);
      const uint64_t needed = flash_bytes_of(get_variants().assemble(chosen.pick), o, sector);
      if (needed <= flash) break;
      const uint64_t excess = needed - flash;
      if (round == 8 || excess >= budget)
        throw_usage("no plan fits --flash " + o.flash + ": the smallest blob the planner found needs " + human_bytes(needed));
      budget -= excess;
    }
  } else {
    chosen = plan::plan_for_budget(table, budget);
  }

  // Baselines: every treatment alone, and the usual hand mix.
  std::vector<plan::Plan> baselines;
  for (size_t t = 0; t < table.treatments.size(); ++t) baselines.push_back(plan::uniform_plan(table, t));
  if (auto hand = plan::hand_mix_plan(table, "q8", "q4")) baselines.push_back(*hand);

  // The plan is confirmed on the whole model. When the weights' errors
  // interact more than the additive prediction says, neighbouring plans (the
  // per-weight errors raised to other powers) are measured too; the baselines
  // that fit are candidates as well. The best measured plan wins.
  struct Measured {
    plan::Plan plan;
    double error = 0;
  };
  const auto best_within = [&](uint64_t b, std::vector<Measured>* tried) {
    plan::Plan first = plan::plan_for_budget(table, b);
    Measured best{first, measured_error(first)};
    const auto consider = [&](const plan::Plan& p) {
      const Measured m{p, measured_error(p)};
      if (tried) tried->push_back(m);
      if (m.error < best.error) best = m;
    };
    if (tried) tried->push_back(best);
    if (best.error > 1.1 * first.predicted && first.predicted > 0)
      for (double exponent : {0.5, 0.75, 1.5, 2.0}) {
        plan::Plan alt = plan::plan_for_budget(table, b, exponent);
        alt.name = "planned (errors^" + std::to_string(exponent).substr(0, 4) + ")";
        consider(alt);
      }
    for (const auto& baseline : baselines)
      if (baseline.bytes <= b) consider(baseline);
    return best;
  };
  // The plans measured below, measured first side by side: the plan at the
  // budget, each baseline and the plan at its size, and the curve's plans.
  const uint64_t lo = plan::smallest_size(table), hi = plan::largest_size(table);
  std::vector<plan::Plan> curve_plans;
  for (int i = 0; i < o.points; ++i) {
    const uint64_t b = o.points == 1 ? hi : lo + (hi - lo) * static_cast<uint64_t>(i) / static_cast<uint64_t>(o.points - 1);
    curve_plans.push_back(plan::plan_for_budget(table, b));
  }
  if (!o.no_confirm) {
    if (show) std::fprintf(stderr, "\rplan: measuring the plan, %zu baselines and %zu curve points", baselines.size(),
                           curve_plans.size());
    std::vector<plan::Plan> wanted = baselines;
    wanted.push_back(plan::plan_for_budget(table, budget));
    for (const auto& b : baselines) wanted.push_back(plan::plan_for_budget(table, b.bytes));
    wanted.insert(wanted.end(), curve_plans.begin(), curve_plans.end());
    measured_error.prefetch(wanted);
    clear_progress(show);
  }
  std::optional<double> measured;
  std::vector<Measured> tried;
  if (!o.no_confirm) {
    const Measured best = best_within(budget, &tried);
    chosen = best.plan;
    measured = best.error;
  }

  // Baselines at their own sizes, and the plan at each of those sizes.
  struct Row {
    plan::Plan baseline;
    double baseline_error = 0;
    Measured planned;
  };
  std::vector<Row> rows;
  if (!o.no_confirm) {
    for (const auto& b : baselines) {
      if (show) std::fprintf(stderr, "\rplan: measuring %-50.50s", b.name.c_str());
      rows.push_back({b, measured_error(b), best_within(b.bytes, nullptr)});
    }
    clear_progress(show);
  }
  // The curve: plans at evenly spaced sizes from the smallest to the largest.
  std::vector<std::pair<plan::Plan, std::optional<double>>> curve;
  for (const auto& p : curve_plans) curve.push_back({p, o.no_confirm ? std::nullopt : std::optional(measured_error(p))});
  if (!from_cache || !table.measured.empty()) plan::write_sensitivity_cache(cache_path, table);

  // The rule file's text, and the model quantize builds from it: its tensors
  // must be the plan's. The file is written only once every check passed.
  plan::RuleFileInfo info{o.input, o.algorithm, o.min_elements, budget,
                          measured ? std::optional(plan::displayed_error(table.metric, *measured)) : std::nullopt};
  const std::string rule_text = plan::plan_rule_file(table, chosen, info);
  std::optional<uint64_t> ram_needed;
  std::optional<Model> built;
  if (!o.no_confirm || !o.write.empty() || ram) {
    const auto file = config::parse_rule_file(rule_text, o.output);
    passes::QuantizeConfig config = base;
    config.default_spec = file.settings.at("default");
    config.rules = file.rules;
    config.allow_empty = true;  // a budget the float model meets plans every weight f32
    passes::QuantizeReport report;
    built = passes::quantize_model(model, config, report);
    std::map<std::string, uint64_t> built_bytes;
    for (const auto& init : built->graph.initializers) built_bytes[init.name] = init.tensor.nbytes();
    for (size_t i = 0; i < table.weights.size(); ++i) {
      const auto& w = table.weights[i];
      const std::string& t = table.treatments[chosen.pick[i]];
      const std::string name = t == "f16" ? w.weight.name + "_f16" : w.weight.name;
      const auto it = built_bytes.find(name);
      if (it == built_bytes.end() || it->second != w.bytes[chosen.pick[i]])
        throw std::runtime_error("the rule file " + o.output + " does not rebuild weight '" + w.weight.name + "' as " + t +
                                 " (a rule of another weight matches it); please report this");
    }
    if (ram) {
      ram_needed = activation_ram(*built, declared_shape_feeds(*built));
      if (*ram_needed > ram)
        throw_usage("--ram " + o.ram + ": the model's activations need " + human_bytes(*ram_needed) +
                    " whatever its weights' bits (the arena holds activations; quantized weights do not shrink it)");
    }
  }
  write_file_atomically(o.output, rule_text);
  if (!o.write.empty()) save_model(*built, o.write);

  // Report.
  nlohmann::ordered_json weights = nlohmann::ordered_json::array();
  for (size_t i = 0; i < table.weights.size(); ++i) {
    const auto& w = table.weights[i];
    nlohmann::ordered_json options = nlohmann::ordered_json::object();
    for (size_t t = 0; t < table.treatments.size(); ++t)
      options[table.treatments[t]] = {{"bytes", w.bytes[t]}, {"error", plan::displayed_error(table.metric, w.error[t])}};
    weights.push_back({{"name", w.weight.name},
                       {"op", w.weight.op},
                       {"shape", w.weight.shape},
                       {"treatment", table.treatments[chosen.pick[i]]},
                       {"bytes", w.bytes[chosen.pick[i]]},
                       {"error", plan::displayed_error(table.metric, w.error[chosen.pick[i]])},
                       {"options", options}});
  }
  nlohmann::ordered_json comparison = nlohmann::ordered_json::array();
  for (const auto& r : rows)
    comparison.push_back({{"baseline", plan_json(table, r.baseline, r.baseline_error)},
                          {"planned_at_same_bytes", plan_json(table, r.planned.plan, r.planned.error)}});
  nlohmann::ordered_json curve_json = nlohmann::ordered_json::array();
  for (const auto& [p, e] : curve) curve_json.push_back(plan_json(table, p, e));
  nlohmann::ordered_json tried_json = nlohmann::ordered_json::array();
  for (const auto& t : tried) tried_json.push_back(plan_json(table, t.plan, t.error));
  const nlohmann::ordered_json doc = {
      {"input", o.input},
      {"output", o.output},
      {"metric", table.metric},
      {"budget", budget},
      {"weights_total_elements", total_elements},
      {"fixed_bytes", table.fixed_bytes},
      {"smallest_bytes", lo},
      {"largest_bytes", hi},
      {"sensitivity", {{"cache", cache_path}, {"from_cache", from_cache}, {"seconds", table.seconds},
                       {"mode", table.scaled ? "scaled" : "full"},
                       {"runs", table.scaled ? table.weights.size() : table.weights.size() * table.treatments.size()}}},
      {"plan", plan_json(table, chosen, measured)},
      {"ram_bytes", ram_needed ? nlohmann::ordered_json(*ram_needed) : nlohmann::ordered_json()},
      {"refinement", tried_json},
      {"weights", weights},
      {"comparison", comparison},
      {"curve", curve_json}};
  if (!o.curve.empty()) {
    std::vector<plan::CurveSeries> series;
    plan::CurveSeries predicted{"planned, predicted", "#9ab", true, {}}, confirmed{"planned, measured", "#1f5fbf", true, {}};
    for (const auto& [p, e] : curve) {
      predicted.points.push_back({p.bytes, plan::displayed_error(table.metric, p.predicted), ""});
      if (e) confirmed.points.push_back({p.bytes, plan::displayed_error(table.metric, *e), ""});
    }
    plan::CurveSeries uniform{"uniform", "#c0392b", false, {}}, hand{"hand mix", "#8e44ad", false, {}};
    for (const auto& r : rows) {
      const bool is_uniform = r.baseline.name.starts_with("uniform ");
      (is_uniform ? uniform : hand)
          .points.push_back({r.baseline.bytes, plan::displayed_error(table.metric, r.baseline_error),
                             is_uniform ? r.baseline.name.substr(8) : "hand"});
    }
    plan::CurveSeries mine{"this plan", "#27ae60", false, {}};
    mine.points.push_back({chosen.bytes, plan::displayed_error(table.metric, measured ? *measured : chosen.predicted), ""});
    series = {predicted, confirmed, uniform, hand, mine};
    write_file_atomically(o.curve, plan::error_size_svg(series, "slmopt plan: " + std::filesystem::path(o.input).filename().string(),
                                                        table.metric == "kl" ? "KL divergence" : "relative L2 error"));
  }
  if (!emit_pass_result(global, o.report, doc, {})) return;

  std::printf("%-40s %-6s %-10s %12s %10s\n", "weight", "op", "treatment", "bytes", table.metric.c_str());
  for (size_t i = 0; i < table.weights.size(); ++i) {
    const auto& w = table.weights[i];
    std::printf("%-40.40s %-6s %-10s %12s %10.3g\n", w.weight.name.c_str(), w.weight.op.c_str(),
                table.treatments[chosen.pick[i]].c_str(), with_thousands(static_cast<int64_t>(w.bytes[chosen.pick[i]])).c_str(),
                plan::displayed_error(table.metric, w.error[chosen.pick[i]]));
  }
  std::printf("\nsensitivity: %zu weights x %zu treatments, %s%s (%.1f s)\n", table.weights.size(), table.treatments.size(),
              table.scaled ? "one run per weight, scaled, " : "", from_cache ? ("from " + cache_path).c_str() : "measured",
              table.seconds);
  std::printf("%-58s %12s %11s %11s\n", "configuration", "bytes", "predicted", "measured");
  const auto print_plan = [&](const plan::Plan& p, std::optional<double> e) {
    std::printf("%-58.58s %12s %11.4g %11s\n", p.name.c_str(), with_thousands(static_cast<int64_t>(p.bytes)).c_str(),
                plan::displayed_error(table.metric, p.predicted),
                e ? std::to_string(plan::displayed_error(table.metric, *e)).c_str() : "-");
  };
  for (const auto& r : rows) {
    print_plan(r.baseline, r.baseline_error);
    plan::Plan at = r.planned.plan;
    at.name = "  best within " + human_bytes(r.baseline.bytes) + ": " + at.name;
    print_plan(at, r.planned.error);
  }
  print_plan(chosen, measured);
  std::printf("plan: %s of weights within %s (%s %s); wrote %s\n", human_bytes(chosen.bytes).c_str(),
              human_bytes(budget).c_str(), table.metric.c_str(),
              measured ? ("measured " + std::to_string(plan::displayed_error(table.metric, *measured))).c_str()
                       : ("predicted " + std::to_string(plan::displayed_error(table.metric, chosen.predicted))).c_str(),
              o.output.c_str());
}

}  // namespace

void setup_plan(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<PlanCliOptions>();
  auto* cmd = app.add_subcommand("plan", "Choose bits per weight for the least error within a byte budget (writes a rule file)");
  cmd->add_option("input", o->input, "Model (.onnx, safetensors)")->required();
  cmd->add_option("-o,--output", o->output, "Rule file for slmopt quantize --config (.yaml)")->required();
  cmd->add_option("--budget", o->budget, "Bytes all weights may take (\"300KiB\", \"4MB\")");
  cmd->add_option("--bpw", o->bpw, "Average bits per weight over all weights")->check(CLI::Range(0.0, 32.0));
  cmd->add_option("--flash", o->flash, "Flash the packed blob may take (padded to --sector, weights aligned to --align)");
  cmd->add_option("--ram", o->ram, "Fail unless the activation arena fits this RAM");
  cmd->add_option("--align", o->alignment, "With --flash: the blob's weight alignment")->capture_default_str();
  cmd->add_option("--sector", o->sector, "With --flash: the flash erase size")->capture_default_str();
  cmd->add_option("--candidates", o->candidates, "Treatments to choose from: schemes or presets, f16, f32")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--algorithm", o->algorithm, "Quantization algorithm: rtn, mse, gptq, awq")->capture_default_str();
  cmd->add_option("--min-elements", o->min_elements, "Smaller weights stay as they are")->capture_default_str()->check(non_negative());
  cmd->add_option("--metric", o->metric, "Error measure: auto, kl, rel_l2")->capture_default_str();
  cmd->add_option("--sensitivity", o->sensitivity,
                  "full: run every weight under every treatment; scaled: once per weight, the rest extrapolated; "
                  "auto: scaled above 20 M planned elements")
      ->capture_default_str();
  add_calib_options(*cmd, o->calib);
  add_data_options(*cmd, o->data);
  cmd->add_option("--text", o->text, "Language models: measure KL on windows of this text (or .npy of token ids)");
  cmd->add_option("--ctx", o->context, "With --text: tokens per window (default: the model's context, at most 512)")
      ->check(non_negative());
  cmd->add_option("--windows", o->windows, "With --text: windows to measure on (0: all)")->capture_default_str()->check(non_negative());
  cmd->add_option("--cache", o->cache, "Sensitivity cache (default: OUTPUT.sensitivity.json)");
  cmd->add_option("--report", o->report, "Write the report as JSON");
  cmd->add_option("--curve", o->curve, "Write the error-vs-size curve as SVG");
  cmd->add_option("--points", o->points, "Budgets on the curve")->capture_default_str();
  cmd->add_option("--write", o->write, "Also write the planned model (.slm)");
  cmd->add_flag("--no-confirm", o->no_confirm, "Do not run the assembled plans (predicted errors only; instant with a cache)");
  cmd->callback([o, &global] { run_plan(*o, global); });
}

}  // namespace slmopt::cli
