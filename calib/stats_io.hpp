// Calibration statistics on disk (slmopt calibrate writes, --calib-stats reads):
// the blob container (formats/common/blob_container.hpp) with magic
// "SLMCALIB" and a JSON header:
//   {"format": "slmopt-calib", "version": 1, "samples": N,
//    "inputs": [{"key", "kind", "groups", "cols", "count",
//                "sum_sq": blob f64[groups*cols], "sum_abs": blob f64[groups*cols],
//                "sum": blob f64[groups*cols] (optional),
//                "abs_max": blob f32[groups*cols], "gram": blob f64[groups*cols*cols] (optional)}],
//    "weights": {weight name: input key},
//    "ranges": {"names": [...], "min_max": blob f32[2*names]},
//    "histograms": {"names": [...], "bins": B, "lo_hi": blob f32[2*names],
//                   "counts": blob u64[names*B]} (optional)}
// All numbers little-endian. Same statistics, same bytes.
#pragma once

#include <string>

#include "calib/stats.hpp"

namespace slmopt::calib {

void write_stats(const CalibStats& stats, const std::string& path);
// Checks every count and blob length before use; Error(BadInput) names the file.
CalibStats read_stats(const std::string& path);

}  // namespace slmopt::calib
