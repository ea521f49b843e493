#include "fuzz_common.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "quant/quantize_weight.hpp"

namespace slmopt::fuzz {

bool g_require_valid = false;

void fail_valid_input(const Error& e) {
  std::fprintf(stderr, "a valid input was refused: %s\n", e.what());
  std::exit(1);
}

const std::string& scratch_dir() {
  static const std::string dir = [] {
    const std::filesystem::path base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    const auto path = base / ("slmopt-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
    return path.string();
  }();
  return dir;
}

std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

void touch(const Tensor& t) {
  if (t.is_quantized()) {
    if (t.numel() <= (int64_t{1} << 20)) (void)quant::dequantize(t);
    return;
  }
  const uint8_t* p = t.bytes();
  volatile uint8_t sum = 0;
  for (size_t i = 0; p && i < t.nbytes(); ++i) sum = static_cast<uint8_t>(sum + p[i]);
}

void touch(const Model& model) {
  for_each_graph(model.graph, [](const Graph& g, int) {
    for (const auto& init : g.initializers) touch(init.tensor);
  });
}

}  // namespace slmopt::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  slmopt::set_memory_limit(uint64_t{64} << 20);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  slmopt::fuzz::fuzz_one(data, size);
  return 0;
}
