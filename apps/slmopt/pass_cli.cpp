#include "pass_cli.hpp"

#include <cstdio>
#include <iostream>

#include "calib/collector.hpp"
#include "calib/dataset.hpp"
#include "calib/stats_io.hpp"
#include "lm_text.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "runtime/session.hpp"

namespace slmopt::cli {

std::string CalibArgs::describe() const {
  return (dir.empty() ? "" : " calib=" + dir) + (stats.empty() ? "" : " calib-stats=" + stats);
}

void add_calib_options(CLI::App& cmd, CalibArgs& args) {
  cmd.add_option("--calib", args.dir, "Calibration samples (folder, as --data of run/eval), or a language model's text: .txt, or .npy of token ids");
  cmd.add_option("--tokenizer", args.tokenizer, "With a --calib text: tokenizer.json, llama2.c tokenizer.bin or GGUF vocabulary (default: beside the model)");
  cmd.add_option("--calib-ctx", args.context, "With a --calib text: tokens per window")->capture_default_str();
  cmd.add_option("--calib-stats", args.stats, "Statistics written by slmopt calibrate");
}

void check_calib_args(const CalibArgs& args) {
  if (!args.dir.empty() && !args.stats.empty()) throw_usage("give --calib or --calib-stats, not both");
}

calib::CalibStats load_calibration(const CalibArgs& args, const Model& model, const std::string& model_path, bool show) {
  check_calib_args(args);
  if (!args.stats.empty()) return calib::read_stats(args.stats);
  if (args.dir.empty()) return {};
  const runtime::Session probe(model);
  const bool text = args.dir.ends_with(".txt") || args.dir.ends_with(".npy");
  const auto samples = text ? text_samples(model, model_path, args.dir, args.tokenizer, args.context)
                                                  : calib::load_samples(args.dir, probe.feed_inputs());
  calib::CalibStats stats = calib::collect_stats(model, samples, {}, [&](size_t done, size_t total) {
    if (show) std::fprintf(stderr, "\rcalibrate %zu/%zu samples", done, total);
  });
  if (show) std::fprintf(stderr, "\r%-40s\r", "");
  return stats;
}

RuleSet with_shorthand(RuleSet file_rules, const std::string& text, const std::string& flag,
                       const std::string& key_for_numbers, const std::string& key_for_words) {
  if (text.empty()) return file_rules;
  RuleSet out = parse_rule_shorthand(text, key_for_numbers, key_for_words);
  for (auto& r : out.rules) r.label = flag + " " + r.label;
  out.rules.insert(out.rules.end(), file_rules.rules.begin(), file_rules.rules.end());
  return out;
}

passes::Progress progress_line(const std::string& verb, bool show) {
  return [verb, show](size_t done, size_t total, const std::string& name) {
    if (show) std::fprintf(stderr, "\r%s %zu/%zu %-40.40s", verb.c_str(), done, total, name.c_str());
  };
}

void clear_progress(bool show) {
  if (show) std::fprintf(stderr, "\r%-70s\r", "");
}

bool emit_pass_result(const GlobalOptions& global, const std::string& report_path, const nlohmann::ordered_json& doc,
                      const std::vector<std::string>& warnings) {
  if (!report_path.empty()) write_file_atomically(report_path, doc.dump(2) + "\n");
  for (const auto& w : warnings)
    if (!global.quiet) std::cerr << "slmopt: warning: " << w << "\n";
  if (global.json) print_json(doc);
  return !global.json && !global.quiet;
}

}  // namespace slmopt::cli
