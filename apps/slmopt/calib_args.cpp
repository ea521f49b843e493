#include "calib_args.hpp"

#include <cstdio>

#include "calib/collector.hpp"
#include "calib/dataset.hpp"
#include "calib/stats_io.hpp"
#include "core/error.hpp"
#include "runtime/session.hpp"

namespace slmopt::cli {

std::string CalibArgs::describe() const {
  return (dir.empty() ? "" : " calib=" + dir) + (stats.empty() ? "" : " calib-stats=" + stats);
}

void add_calib_options(CLI::App& cmd, CalibArgs& args) {
  cmd.add_option("--calib", args.dir, "Calibration samples (folder, as --data of run/eval)");
  cmd.add_option("--calib-stats", args.stats, "Statistics written by slmopt calibrate");
}

void check_calib_args(const CalibArgs& args) {
  if (!args.dir.empty() && !args.stats.empty()) throw_usage("give --calib or --calib-stats, not both");
}

calib::CalibStats load_calibration(const CalibArgs& args, const Model& model, bool show) {
  check_calib_args(args);
  if (!args.stats.empty()) return calib::read_stats(args.stats);
  if (args.dir.empty()) return {};
  const runtime::Session probe(model);
  const auto samples = calib::load_samples(args.dir, probe.feed_inputs());
  calib::CalibStats stats = calib::collect_stats(model, samples, {}, [&](size_t done, size_t total) {
    if (show) std::fprintf(stderr, "\rcalibrate %zu/%zu samples", done, total);
  });
  if (show) std::fprintf(stderr, "\r%-40s\r", "");
  return stats;
}

}  // namespace slmopt::cli
