// What every subcommand shares: the global flags and the small output helpers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/memory_limit.hpp"

namespace slmopt::cli {

struct GlobalOptions {
  bool json = false;   // print the result as one JSON document on stdout
  bool quiet = false;  // no progress or chatter on stderr
  int exit_code = 0;   // set by a subcommand that fails softly (a gate)
};

// Where the samples come from, shared by run, eval and later calibration.
struct DataOptions {
  std::string dir;                  // test_data_set_N/ folders or sample folders
  std::vector<std::string> inputs;  // NAME=FILE pairs
  int random = 0;                   // that many random samples
  uint32_t seed = 0;
};
void add_data_options(CLI::App& cmd, DataOptions& data);

// --requantize exact|fixed-point: how QLinearConv/QLinearMatMul round their
// accumulators (runtime/requantization.hpp); the value is a valid name.
void add_requantize_option(CLI::App& cmd, std::string& name, const std::string& whose);

// Run before any subcommand's work: an output option (-o, --report, --junit,
// --extract, --curve, --write) may not name a file that another argument of
// the command names (the same file under any path), nor an existing FIFO,
// device or socket. AtomicFile checks again when it writes; this check only
// spares the user a long run that ends in that refusal.
void check_outputs_before_work(const CLI::App& command);

// A validator for counts and sizes: "0 or more" (CLI11's own prints the
// largest double as its upper bound).
const CLI::Validator& non_negative();

// "1,234,567"
std::string with_thousands(int64_t n);
using slmopt::human_bytes;  // "1.25 MiB" (core/memory_limit.hpp)
void print_json(const nlohmann::ordered_json& doc);

// One registration function per subcommand file.
void setup_inspect(CLI::App& app, GlobalOptions& global);
void setup_convert(CLI::App& app, const GlobalOptions& global);
void setup_simplify(CLI::App& app, const GlobalOptions& global);
void setup_run(CLI::App& app, GlobalOptions& global);
void setup_eval(CLI::App& app, GlobalOptions& global);
void setup_quantize(CLI::App& app, const GlobalOptions& global);
void setup_calibrate(CLI::App& app, const GlobalOptions& global);
void setup_prune(CLI::App& app, const GlobalOptions& global);
void setup_lowrank(CLI::App& app, const GlobalOptions& global);
void setup_pack(CLI::App& app, GlobalOptions& global);
void setup_verify(CLI::App& app, GlobalOptions& global);
void setup_generate(CLI::App& app, const GlobalOptions& global);
void setup_plan(CLI::App& app, const GlobalOptions& global);

}  // namespace slmopt::cli
