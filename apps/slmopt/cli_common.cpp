#include "cli_common.hpp"

#include <cstdio>
#include <iostream>

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

}  // namespace slmopt::cli
