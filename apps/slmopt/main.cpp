// slmopt: parse the command line, run one subcommand, map failures to exit codes
// (0 ok, 1 accuracy gate failed, 2 bad input or usage, 3 internal error).
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "core/error.hpp"
#include "core/memory_limit.hpp"
#include "device_budget.hpp"
#include "core/version.hpp"

int main(int argc, char** argv) {
  using namespace slmopt;
  reuse_freed_memory();
  CLI::App app{"slmopt: prune, quantize, factorize, pack and verify models for edge devices"};
  app.set_version_flag("--version", std::string(kVersion));
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand
  cli::GlobalOptions global;
  app.add_flag("--json", global.json, "Print the result as JSON on stdout");
  app.add_flag("-q,--quiet", global.quiet, "No progress output");
  app.add_option_function<std::string>(
      "--memory-limit", [](const std::string& text) { set_memory_limit(cli::parse_size(text, "--memory-limit")); },
      "Most bytes of tensors held at once, e.g. 2GiB (default: SLMOPT_MEMORY_LIMIT, else the machine's RAM)");
  cli::setup_inspect(app, global);
  cli::setup_convert(app, global);
  cli::setup_simplify(app, global);
  cli::setup_run(app, global);
  cli::setup_eval(app, global);
  cli::setup_calibrate(app, global);
  cli::setup_prune(app, global);
  cli::setup_quantize(app, global);
  cli::setup_lowrank(app, global);
  cli::setup_plan(app, global);
  cli::setup_pack(app, global);
  cli::setup_verify(app, global);
  cli::setup_generate(app, global);
  app.parse_complete_callback([&app] {
    for (const CLI::App* command : app.get_subcommands()) cli::check_outputs_before_work(*command);
  });
  try {
    app.parse(argc, argv);
    return global.exit_code;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::cerr << "slmopt: error: " << e.what() << " (--help lists the options)\n";
    return 2;
  } catch (const Error& e) {
    std::cerr << "slmopt: error: " << e.what() << "\n";
    return e.kind() == ErrorKind::Internal ? 3 : 2;
  } catch (const nlohmann::json::exception& e) {
    // A JSON input whose reader missed a check: say what, without the library's tag.
    std::string what = e.what();
    if (what.starts_with("[json.exception.") && what.find("] ") != std::string::npos) what = what.substr(what.find("] ") + 2);
    std::cerr << "slmopt: error: unexpected JSON content: " << what << "\n";
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {
    // Creating an output folder over a file, on a read-only disk, ...: the user's to fix.
    std::cerr << "slmopt: error: " << e.path1().string() << ": " << e.code().message() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "slmopt: error: out of memory\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "slmopt: internal error: " << e.what() << "\n";
    return 3;
  }
}
