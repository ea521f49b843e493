#include "cli_common.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>

#include "core/error.hpp"
#include "core/file_guard.hpp"

namespace slmopt::cli {

std::string with_thousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

void add_requantize_option(CLI::App& cmd, std::string& name, const std::string& whose) {
  cmd.add_option("--requantize", name,
                 "How " + whose + " integer layers (QLinearConv, QLinearMatMul) round: exact (ONNX's definition, "
                 "as ONNX Runtime) or fixed-point (int32 multiplier and shift, as TFLite Micro and CMSIS-NN)")
      ->check(CLI::IsMember({"exact", "fixed-point"}))
      ->default_val("exact");
}

void add_data_options(CLI::App& cmd, DataOptions& data) {
  cmd.add_option("--data", data.dir, "Folder of samples: test_data_set_N/input_K.pb, or sample folders of NAME.npy");
  cmd.add_option("--input", data.inputs, "NAME=FILE (.npy or .pb); repeat per input");
  cmd.add_option("--random", data.random, "Use N random samples (floats in [-1,1), ints in [0,8))");
  cmd.add_option("--seed", data.seed, "Seed for --random");
}

void print_json(const nlohmann::ordered_json& doc) { std::cout << doc.dump(2) << "\n"; }

const CLI::Validator& non_negative() {
  static const CLI::Validator v(
      [](const std::string& text) {
        double value = 0;
        return CLI::detail::lexical_cast(text, value) && value >= 0 ? std::string() : "takes 0 or more, not '" + text + "'";
      },
      "NONNEGATIVE");
  return v;
}

void check_outputs_before_work(const CLI::App& command) {
  static const std::set<std::string> output_options = {"output", "report", "junit", "extract", "curve", "write"};
  std::vector<std::string> outputs;
  std::set<std::pair<dev_t, ino_t>> inputs;
  for (const CLI::Option* option : command.get_options()) {
    const bool is_output = output_options.count(option->get_lnames().empty() ? "" : option->get_lnames().front()) > 0;
    for (const std::string& value : option->results()) {
      if (is_output) {
        outputs.push_back(value);
        continue;
      }
      // Any other argument that names a file (a model, data, NAME=FILE) is read.
      const std::string path = value.find('=') != std::string::npos && !std::filesystem::exists(value)
                                   ? value.substr(value.find('=') + 1)
                                   : value;
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) inputs.emplace(st.st_dev, st.st_ino);
    }
  }
  for (const std::string& out : outputs) {
    struct stat st {};
    if (::stat(out.c_str(), &st) != 0 || S_ISDIR(st.st_mode)) continue;  // new, or an output folder
    checked_output_path(out);  // a FIFO, device or socket
    if (inputs.count({st.st_dev, st.st_ino}))
      throw_bad_input("the output is a file this command reads; write to another path", out);
  }
}

}  // namespace slmopt::cli
