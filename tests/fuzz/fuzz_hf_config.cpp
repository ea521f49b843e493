// Hugging Face config.json: the architecture fields the graph builders trust.
#include "fuzz_common.hpp"
#include "hf_config/hf_config.hpp"

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  slmopt::fuzz::expect_load_or_error([&] { (void)slmopt::parse_hf_config(text, "config.json"); });
}
