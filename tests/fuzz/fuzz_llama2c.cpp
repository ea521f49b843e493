// llama2.c checkpoints (legacy and version 1): header fields and tensor sizes.
#include "fuzz_common.hpp"
#include "llama2c/llama2c_io.hpp"

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  const std::string path = slmopt::fuzz::write_scratch("model.bin", data, size);
  slmopt::fuzz::expect_load_or_error([&] { slmopt::fuzz::touch(slmopt::llama2c::read_model(path)); });
}
