// Apart from fuzz_common.cpp, whose libFuzzer entry points the seed writer
// must not link.
#include <cstdio>
#include <cstdlib>

#include "fuzz_common.hpp"
#include "safetensors/safetensors_io.hpp"

namespace slmopt::fuzz {

std::string write_index_shards(const std::string& dir) {
  std::vector<NamedTensor> tensors;
  for (int i = 0; i < 5; ++i) {
    Tensor t(DType::F32, {4, i + 1});
    for (int64_t j = 0; j < t.numel(); ++j) t.mutable_data<float>()[j] = static_cast<float>(i * 10 + j) / 8.0f;
    tensors.push_back({"layer." + std::to_string(i) + ".weight", t, {}});
  }
  tensors.push_back({"positions", Tensor::from_values<int64_t>(DType::I64, {3}, {0, 1, 2}), {}});
  safetensors::write_sharded(dir, tensors, {{"format", "pt"}}, 120);  // three shards
  const std::string path = dir + "/model.safetensors.index.json";
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) std::abort();
  std::string text;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  std::fclose(f);
  return text;
}

}  // namespace slmopt::fuzz
