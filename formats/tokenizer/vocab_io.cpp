#include "tokenizer/vocab_io.hpp"

#include <cmath>
#include <cstring>
#include <map>
#include <span>

#include "core/atomic_file.hpp"
#include "core/checked.hpp"
#include "core/error.hpp"

namespace slmopt::text {
namespace {

constexpr int64_t kMaxPieces = 1 << 24;
constexpr uint64_t kMaxPieceBytes = 1 << 16;

// Bounds-checked little-endian reads over a file's bytes.
class Cursor {
 public:
  Cursor(std::string_view bytes, std::string file) : bytes_(bytes), file_(std::move(file)) {}
  template <class T>
  T read(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what).data(), sizeof(T));
    return v;
  }
  std::string_view take(uint64_t n, const char* what) {
    if (!range_within(at_, n, bytes_.size()))
      throw_bad_input(std::string(what) + " at byte " + std::to_string(at_) + " runs past the end of the file", file_);
    auto s = bytes_.substr(at_, n);
    at_ += n;
    return s;
  }
  bool done() const { return at_ == bytes_.size(); }
  uint64_t offset() const { return at_; }
  const std::string& file() const { return file_; }

 private:
  std::string_view bytes_;
  uint64_t at_ = 0;
  std::string file_;
};

PieceType llama2c_type(int64_t id, const std::string& piece) {
  if (id == 0) return PieceType::Unknown;
  if (id == 1 || id == 2) return PieceType::Control;
  if (piece.size() == 6 && piece.starts_with("<0x") && piece.back() == '>') return PieceType::Byte;
  return PieceType::Normal;
}

}  // namespace

PieceVocab read_llama2c_tokenizer(const std::string& path, int64_t expected_pieces) {
  const std::string bytes = read_small_file(path);
  Cursor c(bytes, path);
  const auto max_length = c.read<int32_t>("max_token_length");
  if (max_length <= 0 || static_cast<uint64_t>(max_length) > kMaxPieceBytes)
    throw_bad_input("llama2.c tokenizer: max_token_length " + std::to_string(max_length) + " is out of range", path);
  PieceVocab v;
  v.space = " ";
  v.bos = 1;
  v.eos = 2;
  while (!c.done() && (expected_pieces == 0 || static_cast<int64_t>(v.pieces.size()) < expected_pieces)) {
    if (static_cast<int64_t>(v.pieces.size()) == kMaxPieces) throw_bad_input("llama2.c tokenizer has too many pieces", path);
    const auto score = c.read<float>("piece score");
    const auto length = c.read<int32_t>("piece length");
    if (length < 0 || length > max_length)
      throw_bad_input("llama2.c tokenizer piece " + std::to_string(v.pieces.size()) + " has length " +
                          std::to_string(length) + " (max_token_length " + std::to_string(max_length) + ")",
                      path);
    std::string piece(c.take(static_cast<uint64_t>(length), "piece"));
    v.types.push_back(llama2c_type(static_cast<int64_t>(v.pieces.size()), piece));
    v.scores.push_back(score);
    v.pieces.push_back(std::move(piece));
  }
  if (expected_pieces > 0 && static_cast<int64_t>(v.pieces.size()) != expected_pieces)
    throw_bad_input("llama2.c tokenizer holds " + std::to_string(v.pieces.size()) + " pieces, the model has " +
                        std::to_string(expected_pieces),
                    path);
  if (v.pieces.size() < 3) throw_bad_input("llama2.c tokenizer holds fewer than 3 pieces", path);
  return v;
}

namespace {

enum GgufType : uint32_t {
  U8 = 0, I8, U16, I16, U32, I32, F32, Bool, String, Array, U64, I64, F64
};

uint64_t scalar_size(uint32_t type, const std::string& file) {
  switch (type) {
    case U8: case I8: case Bool: return 1;
    case U16: case I16: return 2;
    case U32: case I32: case F32: return 4;
    case U64: case I64: case F64: return 8;
    default: throw_bad_input("GGUF value type " + std::to_string(type) + " is unknown", file);
  }
}

std::string read_string(Cursor& c) {
  const auto n = c.read<uint64_t>("string length");
  if (n > kMaxPieceBytes * 16) throw_bad_input("GGUF string of " + std::to_string(n) + " bytes is too long", c.file());
  return std::string(c.take(n, "string"));
}

// The values of the keys we use; the rest are skipped.
struct GgufValue {
  uint32_t type = 0;
  uint32_t element_type = 0;
  std::vector<std::string> strings;
  std::vector<double> numbers;
};

GgufValue read_value(Cursor& c, uint32_t type, bool keep) {
  GgufValue v;
  v.type = type;
  if (type == String) {
    auto s = read_string(c);
    if (keep) v.strings.push_back(std::move(s));
  } else if (type == Array) {
    v.element_type = c.read<uint32_t>("array type");
    const auto n = c.read<uint64_t>("array length");
    if (n > static_cast<uint64_t>(kMaxPieces)) throw_bad_input("GGUF array of " + std::to_string(n) + " values is too long", c.file());
    for (uint64_t i = 0; i < n; ++i) {
      if (v.element_type == Array) throw_bad_input("GGUF nested arrays are not supported", c.file());
      GgufValue e = read_value(c, v.element_type, keep);
      if (!keep) continue;
      if (v.element_type == String) v.strings.push_back(std::move(e.strings[0]));
      else v.numbers.push_back(e.numbers[0]);
    }
  } else {
    const auto raw = c.take(scalar_size(type, c.file()), "value");
    double x = 0;
    auto get = [&](auto t) { std::memcpy(&t, raw.data(), sizeof t); x = static_cast<double>(t); };
    switch (type) {
      case U8: case Bool: get(uint8_t{}); break;
      case I8: get(int8_t{}); break;
      case U16: get(uint16_t{}); break;
      case I16: get(int16_t{}); break;
      case U32: get(uint32_t{}); break;
      case I32: get(int32_t{}); break;
      case F32: get(float{}); break;
      case U64: get(uint64_t{}); break;
      case I64: get(int64_t{}); break;
      case F64: get(double{}); break;
    }
    v.numbers.push_back(x);
  }
  return v;
}

}  // namespace

PieceVocab read_gguf_vocab(const std::string& path) {
  const std::string bytes = read_small_file(path, 1u << 30);
  Cursor c(bytes, path);
  if (c.take(4, "magic") != "GGUF") throw_bad_input("not a GGUF file (no 'GGUF' magic)", path);
  const auto version = c.read<uint32_t>("version");
  if (version < 2 || version > 3) throw_bad_input("GGUF version " + std::to_string(version) + " is not supported (2, 3)", path);
  c.read<uint64_t>("tensor count");
  const auto kv_count = c.read<uint64_t>("key/value count");
  std::map<std::string, GgufValue> kv;
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key = read_string(c);
    const auto type = c.read<uint32_t>("value type");
    const bool keep = key.starts_with("tokenizer.ggml.");
    kv[key] = read_value(c, type, keep);
  }
  auto get = [&](const std::string& key) -> const GgufValue& {
    auto it = kv.find(key);
    if (it == kv.end()) throw_bad_input("GGUF key '" + key + "' is missing", path);
    return it->second;
  };
  const auto& model = get("tokenizer.ggml.model");
  if (model.strings.empty() || model.strings[0] != "llama")
    throw_bad_input("GGUF tokenizer model '" + (model.strings.empty() ? "" : model.strings[0]) +
                        "' is not a SentencePiece vocabulary ('llama')",
                    path);
  PieceVocab v;
  v.space = "\xE2\x96\x81";
  v.pieces = get("tokenizer.ggml.tokens").strings;
  const auto& scores = get("tokenizer.ggml.scores").numbers;
  const auto& types = get("tokenizer.ggml.token_type").numbers;
  if (v.pieces.empty() || scores.size() != v.pieces.size() || types.size() != v.pieces.size())
    throw_bad_input("GGUF tokenizer has " + std::to_string(v.pieces.size()) + " tokens, " + std::to_string(scores.size()) +
                        " scores and " + std::to_string(types.size()) + " types",
                    path);
  // Values arrive as doubles; each is range-checked before a conversion
  // (an out-of-range double to int or float is undefined behaviour).
  for (size_t i = 0; i < v.pieces.size(); ++i) {
    if (!(std::fabs(scores[i]) <= 3.4e38))
      throw_bad_input("GGUF token " + std::to_string(i) + " has score " + std::to_string(scores[i]), path);
    if (!(types[i] >= 1 && types[i] <= 6 && types[i] == std::floor(types[i])))
      throw_bad_input("GGUF token " + std::to_string(i) + " has unknown type " + std::to_string(types[i]), path);
    v.scores.push_back(static_cast<float>(scores[i]));
    v.types.push_back(static_cast<PieceType>(static_cast<int32_t>(types[i])));
  }
  auto id = [&](const char* key, int64_t fallback) {
    auto it = kv.find(key);
    if (it == kv.end() || it->second.numbers.empty()) return fallback;
    const double x = it->second.numbers[0];
    if (!(x >= 0 && x < static_cast<double>(v.pieces.size()) && x == std::floor(x)))
      throw_bad_input(std::string("GGUF ") + key + " " + std::to_string(x) + " is outside the vocabulary", path);
    return static_cast<int64_t>(x);
  };
  v.bos = id("tokenizer.ggml.bos_token_id", -1);
  v.eos = id("tokenizer.ggml.eos_token_id", -1);
  v.unk = id("tokenizer.ggml.unknown_token_id", 0);
  if (auto it = kv.find("tokenizer.ggml.add_space_prefix"); it != kv.end() && !it->second.numbers.empty())
    v.add_space_prefix = it->second.numbers[0] != 0;
  return v;
}

}  // namespace slmopt::text
