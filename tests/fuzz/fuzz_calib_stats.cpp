// Calibration statistics (slmopt calibrate's .calib files).
#include "calib/stats_io.hpp"
#include "fuzz_common.hpp"

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  const std::string path = slmopt::fuzz::write_scratch("model.calib", data, size);
  slmopt::fuzz::expect_load_or_error([&] { (void)slmopt::calib::read_stats(path); });
}
