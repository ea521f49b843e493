// UTF-8 helpers the tokenizers share.
#pragma once

#include <cstddef>
#include <string_view>

namespace slmopt::text {

// Bytes of the character that starts with `lead`; a stray continuation byte
// counts as a character of its own (tokenizers fall back to its byte).
inline size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

// The length of the character at `at`, cut at the end of `s`.
inline size_t utf8_char_at(std::string_view s, size_t at) {
  const size_t n = utf8_length(static_cast<unsigned char>(s[at]));
  return n < s.size() - at ? n : s.size() - at;
}

}  // namespace slmopt::text
