// .slm files: container header, graph section, tensor table and quantized parts
// (validated, then dequantized).
#include "fuzz_common.hpp"
#include "slm/slm_io.hpp"

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  const std::string path = slmopt::fuzz::write_scratch("model.slm", data, size);
  slmopt::fuzz::expect_load_or_error([&] { slmopt::fuzz::touch(slmopt::slm::read_slm(path)); });
}
