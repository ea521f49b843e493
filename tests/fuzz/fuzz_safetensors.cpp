// safetensors: the 8-byte header length, the JSON header, and the data offsets.
#include "fuzz_common.hpp"
#include "safetensors/safetensors_io.hpp"

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  const std::string path = slmopt::fuzz::write_scratch("model.safetensors", data, size);
  slmopt::fuzz::expect_load_or_error([&] { slmopt::fuzz::touch(slmopt::safetensors::read_model(path)); });
}
