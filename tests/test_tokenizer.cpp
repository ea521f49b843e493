// Tokenizers against ids other implementations produced: llama.cpp's test
// strings with Hugging Face's ids for the Llama 2 SentencePiece vocabulary, and
// llama2.c's tokenizer of stories260K against the model's reference tokens.
#include <sstream>

#include "core/error.hpp"
#include "test_util.hpp"
#include "text/bpe_tokenizer.hpp"
#include "text/spm_tokenizer.hpp"
#include "tokenizer/vocab_io.hpp"

using namespace slmopt;

namespace {

// llama.cpp's format: strings separated by "\n__ggml_vocab_test__\n", one line of ids each.
std::vector<std::pair<std::string, std::vector<int64_t>>> vocab_cases(const std::string& dir) {
  const std::string inp = test::read_bytes(dir + "/cases.inp"), out = test::read_bytes(dir + "/cases.out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t at = 0; at < inp.size();) {
    const size_t end = inp.find(sep, at);
    REQUIRE(end != std::string::npos);
    texts.push_back(inp.substr(at, end - at));
    at = end + sep.size();
  }
  std::vector<std::pair<std::string, std::vector<int64_t>>> cases;
  std::istringstream lines(out);
  std::string line;
  for (const auto& text : texts) {
    REQUIRE(std::getline(lines, line));
    std::istringstream ids(line);
    std::vector<int64_t> expected;
    for (int64_t id; ids >> id;) expected.push_back(id);
    cases.emplace_back(text, expected);
  }
  return cases;
}

// Every case's ids match, and decoding gives the text back.
void check_cases(const text::Tokenizer& tok, const std::string& dir) {
  const auto cases = vocab_cases(dir);
  CHECK(cases.size() == 46);
  int matched = 0;
  for (const auto& [text, expected] : cases) {
    INFO("text: [" << text << "]");
    const auto ids = tok.encode(text);
    CHECK(ids == expected);
    matched += ids == expected;
    CHECK(tok.decode(ids) == text);
  }
  CHECK(matched == 46);
}

}  // namespace

TEST_CASE("SentencePiece BPE matches every llama.cpp test case of the Llama 2 vocabulary") {
  const std::string dir = test::test_data("tokenizers/llama-spm");
  const text::SpmTokenizer tok(text::read_gguf_vocab(dir + "/vocab.gguf"));
  CHECK(tok.size() == 32000);
  CHECK(tok.bos() == 1);
  CHECK(tok.eos() == 2);
  check_cases(tok, dir);  // decoding drops only the space SentencePiece put in front
}

TEST_CASE("byte-level BPE matches every llama.cpp test case of GPT-2's tokenizer.json") {
  const std::string dir = test::test_data("tokenizers/gpt2");
  const text::BpeTokenizer tok(text::read_hf_tokenizer(dir + "/tokenizer.json"));
  CHECK(tok.size() == 50257);
  check_cases(tok, dir);
  // Special tokens are matched before splitting.
  const auto eot = tok.encode("Hi<|endoftext|>there");
  CHECK(std::find(eot.begin(), eot.end(), 50256) != eot.end());
  CHECK(tok.decode(eot) == "Hi<|endoftext|>there");
}

TEST_CASE("llama2.c's tokenizer decodes stories260K's reference tokens and encodes the text back") {
  const text::SpmTokenizer tok(text::read_llama2c_tokenizer(test::test_data("stories260K/tok512.bin"), 512));
  const std::vector<int64_t> reference{1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421,
                                       395, 317, 426, 338, 401, 396, 267};
  const std::string text = tok.decode(reference);
  CHECK(text == "Once upon a time, there was a little girl named Lily. She loved to");
  auto ids = tok.encode("Once upon a time, there was a little girl named Lily.");
  CHECK(std::vector<int64_t>(ids.begin(), ids.end()) == std::vector<int64_t>(reference.begin() + 1, reference.begin() + 16));
  // A character with no piece falls back to its UTF-8 bytes, and decodes back.
  const auto llama = tok.encode("a \xF0\x9F\xA6\x99");
  CHECK(llama.size() >= 4);
  CHECK(tok.decode(llama) == "a \xF0\x9F\xA6\x99");
}

TEST_CASE("bad vocabulary files name the file and the problem") {
  test::TempDir tmp;
  auto error = [&](const std::string& bytes, bool gguf) -> std::string {
    test::write_bytes(tmp.file("v"), bytes);
    try {
      if (gguf)
        text::read_gguf_vocab(tmp.file("v"));
      else
        text::read_llama2c_tokenizer(tmp.file("v"), 512);
    } catch (const Error& e) {
      return std::string(e.what()).substr(tmp.file("v").size() + 2);
    }
    return "no error";
  };
  const std::string tok = test::read_bytes(test::test_data("stories260K/tok512.bin"));
  CHECK(error(tok.substr(0, tok.size() - 3), false) == "piece at byte 6224 runs past the end of the file");
  std::string long_piece = tok;
  long_piece[8] = 100;  // the first piece claims 100 bytes; the longest may have 9
  CHECK(error(long_piece, false).starts_with("llama2.c tokenizer piece 0 has length 100"));
  CHECK(error(tok.substr(0, 2), false) == "max_token_length at byte 0 runs past the end of the file");
  const std::string gguf = test::read_bytes(test::test_data("tokenizers/llama-spm/vocab.gguf"));
  CHECK(error("GGUX" + gguf.substr(4), true) == "not a GGUF file (no 'GGUF' magic)");
  CHECK_THAT(error(gguf.substr(0, 100000), true), Catch::Contains("runs past the end of the file"));
  std::string huge_string = gguf;
  huge_string[24 + 7] = 0x7f;  // the first key's length, u64 at byte 24: top byte set
  CHECK(error(huge_string, true).starts_with("GGUF string of "));

  auto hf_error = [&](const std::string& json) -> std::string {
    test::write_bytes(tmp.file("tokenizer.json"), json);
    try {
      text::read_hf_tokenizer(tmp.file("tokenizer.json"));
    } catch (const Error& e) {
      return std::string(e.what()).substr(tmp.file("tokenizer.json").size() + 2);
    }
    return "no error";
  };
  CHECK(hf_error("[1, 2]") == "tokenizer.json is not a JSON object");
  CHECK(hf_error(R"({"model": {"type": "Unigram"}})") == "tokenizer model 'Unigram' is not supported (BPE)");
  CHECK(hf_error(R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "pre_tokenizer": {"type": "Metaspace"}})") ==
        "pre_tokenizer 'Metaspace' is not supported (ByteLevel, or Split then ByteLevel)");
  CHECK(hf_error(R"({"model": {"type": "BPE", "vocab": {"a": 5}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}})") ==
        "vocab id 5 of 'a' is out of range or repeated");
  CHECK_THAT(hf_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "ByteLevel"}})"),
             Catch::StartsWith("tokenizer.json: [json.exception"));
  // Found by fuzzing: a float id (undefined behaviour as an integer) and an
  // added token far past the vocabulary (a huge table from a small file).
  CHECK_THAT(hf_error(R"({"model": {"type": "BPE", "vocab": {"a": 2e94}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}})"),
             Catch::Contains("expected an integer that fits 64-bit signed storage, got 2e+94"));
  CHECK(hf_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"},
                     "added_tokens": [{"id": 16000000, "content": "<x>"}]})") == "added token id 16000000 is out of range");
}
