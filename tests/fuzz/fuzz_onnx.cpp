// The ONNX reader: protobuf bytes, and external-data references resolved
// against the input's folder, which holds the data file the ONNX writer
// would name (model.onnx.data, 16 KiB of a fixed pattern).
#include "fuzz_common.hpp"
#include "onnx/onnx_io.hpp"

namespace {
const std::string& model_dir_with_data() {
  static const std::string dir = [] {
    uint8_t data[16384];
    for (size_t i = 0; i < sizeof data; ++i) data[i] = static_cast<uint8_t>(i * 7);
    slmopt::fuzz::write_scratch("model.onnx.data", data, sizeof data);
    return slmopt::fuzz::scratch_dir();
  }();
  return dir;
}
}  // namespace

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  model_dir_with_data();
  const std::string path = slmopt::fuzz::write_scratch("model.onnx", data, size);
  slmopt::fuzz::expect_load_or_error([&] { slmopt::fuzz::touch(slmopt::onnx_format::read_onnx(path)); });
}
