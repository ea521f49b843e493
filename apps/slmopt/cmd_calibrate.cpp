// slmopt calibrate MODEL --data D -o stats.bin: runs the model on calibration
// samples once and writes what the passes need (per-layer input statistics,
// X^T X, activation ranges); quantize takes it back with --calib-stats.
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "calib/collector.hpp"
#include "calib/stats_io.hpp"
#include "cli_common.hpp"
#include "model_io.hpp"
#include "runtime/session.hpp"
#include "samples.hpp"

namespace slmopt::cli {
namespace {

struct CalibrateCliOptions {
  std::string input, output;
  DataOptions data;
  bool no_gram = false;
  int64_t max_gram_cols = 4096;
  int64_t histogram_bins = 2048;
};

void run_calibrate(const CalibrateCliOptions& o, const GlobalOptions& global) {
  const Model model = load_model(o.input);
  const runtime::Session probe(model);
  const auto samples = load_requested_samples(o.data, probe.feed_inputs());
  calib::CollectOptions options;
  options.gram = !o.no_gram;
  options.max_gram_cols = o.max_gram_cols;
  if (o.histogram_bins < 0 || o.histogram_bins > 1 << 20) throw_usage("--histogram-bins takes 0 to 1048576");
  options.histogram_bins = o.histogram_bins;
  const bool show = !global.quiet && !global.json && isatty(2);
  const calib::CalibStats stats = calib::collect_stats(model, samples, options, [&](size_t done, size_t total) {
    if (show) std::fprintf(stderr, "\rcalibrate %zu/%zu samples", done, total);
  });
  if (show) std::fprintf(stderr, "\r%-40s\r", "");
  calib::write_stats(stats, o.output);
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (const auto& [key, s] : stats.inputs)
    layers.push_back({{"input", key}, {"kind", s.kind}, {"groups", s.groups}, {"cols", s.cols}, {"vectors", s.count},
                      {"gram", s.has_gram()}});
  const nlohmann::ordered_json doc = {{"model", o.input},         {"output", o.output},
                                      {"samples", stats.samples},  {"weights", stats.weight_inputs.size()},
                                      {"values", stats.ranges.size()}, {"layers", layers}};
  if (global.json) {
    print_json(doc);
    return;
  }
  if (global.quiet) return;
  std::printf("%-48s %-6s %6s %12s  %s\n", "layer input", "kind", "cols", "vectors", "X^T X");
  for (const auto& [key, s] : stats.inputs)
    std::printf("%-48.48s %-6s %6lld %12lld  %s\n", key.c_str(), s.kind.c_str(), static_cast<long long>(s.cols),
                static_cast<long long>(s.count), s.has_gram() ? "yes" : "no");
  std::printf("%lld samples; statistics for %zu weights and ranges of %zu values; wrote %s\n",
              static_cast<long long>(stats.samples), stats.weight_inputs.size(), stats.ranges.size(), o.output.c_str());
}

}  // namespace

void setup_calibrate(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<CalibrateCliOptions>();
  auto* cmd = app.add_subcommand("calibrate", "Collect calibration statistics once for quantize (--calib-stats)");
  cmd->add_option("input", o->input, "Model (.onnx, .slm, safetensors)")->required();
  cmd->add_option("-o,--output", o->output, "Statistics file to write")->required();
  add_data_options(*cmd, o->data);
  cmd->add_flag("--no-gram", o->no_gram, "Skip X^T X (per-channel sums only; GPTQ and AWQ need it)");
  cmd->add_option("--max-gram-cols", o->max_gram_cols, "Layers with wider inputs skip X^T X (default 4096)");
  cmd->add_option("--histogram-bins", o->histogram_bins,
                  "Bins of each value's histogram for the percentile and mse observers; 0 skips the second pass (default 2048)");
  cmd->callback([o, &global] { run_calibrate(*o, global); });
}

}  // namespace slmopt::cli
