// .npz: ZIP central directory, ZIP64 records, stored and deflated members.
#include "calib/npz.hpp"
#include "fuzz_common.hpp"

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  const std::string path = slmopt::fuzz::write_scratch("x.npz", data, size);
  slmopt::fuzz::expect_load_or_error([&] {
    for (const auto& [name, t] : slmopt::calib::read_npz(path)) slmopt::fuzz::touch(t);
  });
}
