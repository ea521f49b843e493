// ONNX TensorProto .pb files, as ONNX's test_data_set_N folders hold them.
#include "calib/dataset.hpp"
#include "fuzz_common.hpp"

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  const std::string path = slmopt::fuzz::write_scratch("input_0.pb", data, size);
  slmopt::fuzz::expect_load_or_error([&] { slmopt::fuzz::touch(slmopt::calib::read_tensor_file(path)); });
}
