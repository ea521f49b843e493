// Sharded safetensors: the index's weight_map against the shards beside it
// (three, as the writer makes them): shard names that are paths or the index
// itself, tensors listed in the wrong shard or not at all, missing shards.
#include <filesystem>

#include "fuzz_common.hpp"
#include "safetensors/safetensors_io.hpp"

namespace {
const std::string& shard_dir() {
  static const std::string dir = [] {
    const std::string d = slmopt::fuzz::scratch_dir() + "/sharded";
    std::filesystem::create_directories(d);
    slmopt::fuzz::write_index_shards(d);
    return d;
  }();
  return dir;
}
}  // namespace

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  shard_dir();
  const std::string path = slmopt::fuzz::write_scratch("sharded/model.safetensors.index.json", data, size);
  slmopt::fuzz::expect_load_or_error([&] { slmopt::fuzz::touch(slmopt::safetensors::read_model(path)); });
}
