// Rule files (YAML or JSON), then each pass's check of the rules it would run.
#include "config/rule_file.hpp"
#include "fuzz_common.hpp"
#include "passes/lowrank.hpp"
#include "passes/prune.hpp"
#include "passes/quantize.hpp"

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  const std::string path = slmopt::fuzz::write_scratch("bits.yaml", data, size);
  slmopt::fuzz::expect_load_or_error([&] {
    const auto file = slmopt::config::read_rule_file(path);
    (void)file.rules.first_match("model.layers.0.mlp.up_proj.weight", "/model/layers.0/mlp/up_proj/MatMul", "MatMul");
    slmopt::passes::QuantizeConfig quantize;
    quantize.rules = file.rules;
    slmopt::fuzz::ignore_error([&] { slmopt::passes::check_quantize_config(quantize); });
    slmopt::passes::PruneConfig prune;
    prune.rules = file.rules;
    slmopt::fuzz::ignore_error([&] { slmopt::passes::check_prune_config(prune); });
    slmopt::passes::LowrankConfig lowrank;
    lowrank.rules = file.rules;
    slmopt::fuzz::ignore_error([&] { slmopt::passes::check_lowrank_config(lowrank); });
  });
}
