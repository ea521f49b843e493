// The C++ blob loader (BlobFile: model, metadata, golden vectors) on resealed input.
#include "blob/blob_io.hpp"
#include "blob_reseal.hpp"
#include "fuzz_common.hpp"

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  slmopt::fuzz::reseal(bytes);
  const std::string path = slmopt::fuzz::write_scratch("model.bin", bytes.data(), bytes.size());
  slmopt::fuzz::expect_load_or_error([&] {
    const slmopt::blob::BlobFile blob(path);
    (void)blob.metadata();
    slmopt::fuzz::touch(blob.model());
    if (const auto golden = blob.golden())
      for (const auto& sample : golden->inputs)
        for (const auto& t : sample) slmopt::fuzz::touch(t);
  });
}
