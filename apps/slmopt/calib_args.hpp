// --calib DIR / --calib-stats FILE, shared by the passes that use calibration.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "calib/stats.hpp"
#include "core/ir.hpp"

namespace slmopt::cli {

struct CalibArgs {
  std::string dir;    // samples: statistics are collected first
  std::string stats;  // written by slmopt calibrate
  bool given() const { return !dir.empty() || !stats.empty(); }
  // Provenance text: " calib=DIR" or " calib-stats=FILE".
  std::string describe() const;
};

void add_calib_options(CLI::App& cmd, CalibArgs& args);

// Error(Usage) when both are given.
void check_calib_args(const CalibArgs& args);

// The statistics (empty without either option); progress on stderr when `show`.
calib::CalibStats load_calibration(const CalibArgs& args, const Model& model, bool show);

}  // namespace slmopt::cli
