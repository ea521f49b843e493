// Tokenizer files: the first byte picks Hugging Face tokenizer.json, a
// llama2.c tokenizer.bin or a GGUF vocabulary; a loaded vocabulary then
// encodes and decodes a fixed text (hostile vocabularies reach the algorithms).
#include "fuzz_common.hpp"
#include "text/bpe_tokenizer.hpp"
#include "text/spm_tokenizer.hpp"
#include "tokenizer/vocab_io.hpp"

namespace {
void exercise(const slmopt::text::Tokenizer& tok) {
  const auto ids = tok.encode("Hello world, ça va? 123 \xF0\x9F\xA6\x99  tabs\tand\nlines");
  (void)tok.decode(ids);
}
}  // namespace

void slmopt::fuzz::fuzz_one(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const uint8_t kind = data[0] % 3;
  static const char* names[] = {"tokenizer.json", "tokenizer.bin", "vocab.gguf"};
  const std::string path = slmopt::fuzz::write_scratch(names[kind], data + 1, size - 1);
  slmopt::fuzz::expect_load_or_error([&] {
    if (kind == 0) exercise(slmopt::text::BpeTokenizer(slmopt::text::read_hf_tokenizer(path)));
    else if (kind == 1) exercise(slmopt::text::SpmTokenizer(slmopt::text::read_llama2c_tokenizer(path)));
    else exercise(slmopt::text::SpmTokenizer(slmopt::text::read_gguf_vocab(path)));
  });
}
