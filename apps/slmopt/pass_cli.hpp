// What the pass commands (quantize, prune, lowrank) share: --calib DIR /
// --calib-stats FILE, shorthand rules before a file's, the progress line, and
// writing the report, warnings and --json result.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "calib/stats.hpp"
#include "cli_common.hpp"
#include "core/ir.hpp"
#include "core/rules.hpp"
#include "passes/quantize.hpp"

namespace slmopt::cli {

struct CalibArgs {
  std::string dir;    // samples (or a language model's .txt text or .npy ids): statistics are collected first
  std::string stats;  // written by slmopt calibrate
  std::string tokenizer;    // for a text
  int64_t context = 256;    // tokens per text window
  bool given() const { return !dir.empty() || !stats.empty(); }
  // Provenance text: " calib=DIR" or " calib-stats=FILE".
  std::string describe() const;
};

void add_calib_options(CLI::App& cmd, CalibArgs& args);

// Error(Usage) when both are given.
void check_calib_args(const CalibArgs& args);

// The statistics (empty without either option); progress on stderr when `show`.
// A text is cut into windows for the language model at `model_path`, tokenized
// by --tokenizer or the tokenizer beside the model.
calib::CalibStats load_calibration(const CalibArgs& args, const Model& model, const std::string& model_path, bool show);

// `file_rules` with the shorthand rules of `flag` (e.g. --rules) in front:
// the command line overrides the file. Numbers set `key_for_numbers`.
RuleSet with_shorthand(RuleSet file_rules, const std::string& text, const std::string& flag,
                       const std::string& key_for_numbers, const std::string& key_for_words);

// "\r<verb> done/total name" on stderr while `show`; clear_progress wipes it.
passes::Progress progress_line(const std::string& verb, bool show);
void clear_progress(bool show);

// Writes `doc` to `report_path` (if any), prints the warnings (unless
// --quiet) and, with --json, the document. True when the caller should
// print its table (neither --json nor --quiet).
bool emit_pass_result(const GlobalOptions& global, const std::string& report_path, const nlohmann::ordered_json& doc,
                      const std::vector<std::string>& warnings);

}  // namespace slmopt::cli
