#include "text/bpe_tokenizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <limits>
#include <memory>

#include "core/error.hpp"
#include "text/utf8.hpp"

namespace slmopt::text {
namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

std::vector<std::string> utf8_chars(std::string_view s) {
  std::vector<std::string> out;
  for (size_t at = 0; at < s.size();) {
    const size_t n = utf8_char_at(s, at);
    out.emplace_back(s.substr(at, n));
    at += n;
  }
  return out;
}

}  // namespace

struct BpeTokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

BpeTokenizer::BpeTokenizer(BpeVocab vocab) : vocab_(std::move(vocab)), regex_(std::make_unique<Regex>()) {
  // GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
  // rest are moved to U+0100 and up, so every byte is a visible character.
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    byte_char_[b] = utf8(printable ? b : next++);
    char_byte_[byte_char_[b]] = static_cast<uint8_t>(b);
  }
  for (size_t i = 0; i < vocab_.tokens.size(); ++i) ids_.emplace(vocab_.tokens[i], static_cast<int64_t>(i));
  for (size_t r = 0; r < vocab_.merges.size(); ++r)
    ranks_.emplace(vocab_.merges[r].first + " " + vocab_.merges[r].second, static_cast<int64_t>(r));
  int error = 0;
  PCRE2_SIZE offset = 0;
  regex_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(vocab_.pattern.c_str()), vocab_.pattern.size(),
                               PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
  if (!regex_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    throw_bad_input("the pre-tokenizer pattern does not compile at offset " + std::to_string(offset) + ": " +
                    reinterpret_cast<const char*>(message));
  }
}

BpeTokenizer::~BpeTokenizer() = default;

void BpeTokenizer::encode_piece(std::string_view bytes, std::vector<int64_t>& out) const {
  std::vector<std::string> word;
  for (unsigned char b : bytes) word.push_back(byte_char_[b]);
  while (word.size() > 1) {
    int64_t best = std::numeric_limits<int64_t>::max();
    size_t at = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = ranks_.find(word[i] + " " + word[i + 1]);
      if (it != ranks_.end() && it->second < best) {
        best = it->second;
        at = i;
      }
    }
    if (best == std::numeric_limits<int64_t>::max()) break;
    // Join every occurrence of the best pair, left to right (GPT-2's bpe()).
    const std::string left = word[at], right = word[at + 1];
    std::vector<std::string> merged;
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == left && word[i + 1] == right) {
        merged.push_back(left + right);
        i += 2;
      } else {
        merged.push_back(word[i++]);
      }
    }
    word = std::move(merged);
  }
  for (const auto& symbol : word) {
    auto it = ids_.find(symbol);
    if (it == ids_.end()) throw_bad_input("the vocabulary has no token '" + symbol + "' that BPE produced");
    out.push_back(it->second);
  }
}

std::vector<int64_t> BpeTokenizer::encode(std::string_view raw) const {
  std::string text = vocab_.add_prefix_space && !raw.empty() && raw[0] != ' ' ? " " + std::string(raw) : std::string(raw);
  std::vector<int64_t> ids;
  // Owned so that an error in encode_piece (a token the vocabulary lacks) frees it.
  const std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match_data(
      pcre2_match_data_create_from_pattern(regex_->code, nullptr), &pcre2_match_data_free);
  if (!match_data) throw_internal("PCRE2 could not allocate its match data");
  pcre2_match_data* match = match_data.get();
  auto split = [&](std::string_view part) {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(part.data());
    size_t at = 0;
    while (at < part.size()) {
      const int rc = pcre2_match(regex_->code, subject, part.size(), at, 0, match, nullptr);
      if (rc < 0) {  // no further match: the rest is one piece
        encode_piece(part.substr(at), ids);
        break;
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match);
      if (ov[0] > at) encode_piece(part.substr(at, ov[0] - at), ids);  // text the pattern skipped
      if (ov[1] == ov[0]) {  // an empty match: step over one character
        const size_t n = utf8_char_at(part, ov[0]);
        encode_piece(part.substr(ov[0], n), ids);
        at = ov[0] + n;
        continue;
      }
      encode_piece(part.substr(ov[0], ov[1] - ov[0]), ids);
      at = ov[1];
    }
  };
  // Special tokens are cut out before splitting, the longest first where several start.
  size_t start = 0;
  for (size_t at = 0; at < text.size();) {
    const std::pair<std::string, int64_t>* found = nullptr;
    for (const auto& s : vocab_.special)
      if (!s.first.empty() && text.compare(at, s.first.size(), s.first) == 0 && (!found || s.first.size() > found->first.size()))
        found = &s;
    if (!found) {
      ++at;
      continue;
    }
    split(std::string_view(text).substr(start, at - start));
    ids.push_back(found->second);
    at += found->first.size();
    start = at;
  }
  split(std::string_view(text).substr(start));
  return ids;
}

std::string BpeTokenizer::decode(int64_t id, int64_t previous) const {
  if (id < 0 || id >= size()) throw_usage("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(size()));
  for (const auto& s : vocab_.special)
    if (s.second == id) return s.first;
  std::string out;
  for (const auto& ch : utf8_chars(vocab_.tokens[static_cast<size_t>(id)])) {
    auto it = char_byte_.find(ch);
    out += it == char_byte_.end() ? ch : std::string(1, static_cast<char>(it->second));
  }
  if (previous < 0 && vocab_.add_prefix_space && out.starts_with(' ')) out.erase(0, 1);
  return out;
}

}  // namespace slmopt::text
