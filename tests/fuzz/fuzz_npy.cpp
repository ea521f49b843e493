// .npy: the header dictionary (descr, fortran_order, shape) and the data size.
#include "calib/npy.hpp"
#include "fuzz_common.hpp"

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  slmopt::fuzz::expect_load_or_error([&] { slmopt::fuzz::touch(slmopt::calib::parse_npy(data, size, "x.npy")); });
}
