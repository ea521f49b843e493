// What every subcommand shares: the global flags and the small output helpers.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace slmopt::cli {

struct GlobalOptions {
  bool json = false;   // print the result as one JSON document on stdout
  bool quiet = false;  // no progress or chatter on stderr
};

// "1,234,567"
std::string with_thousands(int64_t n);
// "1.25 MiB"
std::string human_bytes(uint64_t bytes);
void print_json(const nlohmann::ordered_json& doc);

// One registration function per subcommand file.
void setup_inspect(CLI::App& app, const GlobalOptions& global);
void setup_convert(CLI::App& app, const GlobalOptions& global);

}  // namespace slmopt::cli
