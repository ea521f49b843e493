#include "text/spm_tokenizer.hpp"

#include <cctype>
#include <cstdio>
#include <queue>

#include "core/error.hpp"
#include "text/utf8.hpp"

namespace slmopt::text {
namespace {

struct Symbol {
  int prev = -1, next = -1;
  size_t start = 0, length = 0;
};

struct Bigram {
  int left = 0, right = 0;
  float score = 0;
  size_t length = 0;
  // The highest score first; among equals the leftmost.
  bool operator<(const Bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
};

}  // namespace

SpmTokenizer::SpmTokenizer(PieceVocab vocab) : vocab_(std::move(vocab)) {
  for (auto& id : byte_ids_) id = -1;
  for (size_t i = 0; i < vocab_.pieces.size(); ++i) {
    const std::string& p = vocab_.pieces[i];
    if (vocab_.types[i] == PieceType::Byte) {
      // "<0x0A>": exactly two hex digits (sscanf's %X would take "-2" too).
      auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
      if (p.size() == 6 && p.starts_with("<0x") && p[5] == '>' && hex(p[3]) && hex(p[4]))
        byte_ids_[std::stoi(p.substr(3, 2), nullptr, 16)] = static_cast<int64_t>(i);
      continue;
    }
    // Control and unknown pieces ("<s>") are never produced by text.
    if (vocab_.types[i] == PieceType::Control || vocab_.types[i] == PieceType::Unknown) continue;
    ids_.emplace(p, static_cast<int64_t>(i));
  }
}

int64_t SpmTokenizer::find(std::string_view piece) const {
  auto it = ids_.find(std::string(piece));
  return it == ids_.end() ? -1 : it->second;
}

std::vector<int64_t> SpmTokenizer::encode(std::string_view raw) const {
  if (raw.empty()) return {};
  std::string text = vocab_.add_space_prefix ? vocab_.space : std::string();
  for (char ch : raw) text += ch == ' ' ? vocab_.space : std::string(1, ch);

  std::vector<Symbol> symbols;
  for (size_t at = 0; at < text.size();) {
    const size_t n = utf8_char_at(text, at);
    Symbol s;
    s.start = at;
    s.length = n;
    s.prev = static_cast<int>(symbols.size()) - 1;
    s.next = static_cast<int>(symbols.size()) + 1;
    symbols.push_back(s);
    at += n;
  }
  symbols.back().next = -1;

  std::priority_queue<Bigram> queue;
  auto try_pair = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t length = symbols[left].length + symbols[right].length;
    const int64_t id = find(std::string_view(text).substr(symbols[left].start, length));
    if (id >= 0) queue.push(Bigram{left, right, vocab_.scores[static_cast<size_t>(id)], length});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_pair(static_cast<int>(i) - 1, static_cast<int>(i));
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    // Skip pairs that earlier merges changed.
    if (left.length == 0 || right.length == 0 || left.length + right.length != b.length || left.next != b.right) continue;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_pair(left.prev, b.left);
    try_pair(b.left, left.next);
  }

  std::vector<int64_t> ids;
  for (int i = 0; i >= 0; i = symbols[i].next) {
    const auto piece = std::string_view(text).substr(symbols[i].start, symbols[i].length);
    if (const int64_t id = find(piece); id >= 0) {
      ids.push_back(id);
      continue;
    }
    for (unsigned char byte : piece) ids.push_back(byte_ids_[byte] >= 0 ? byte_ids_[byte] : vocab_.unk);
  }
  return ids;
}

std::string SpmTokenizer::decode(int64_t id, int64_t previous) const {
  if (id < 0 || id >= size()) throw_usage("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(size()));
  const auto type = vocab_.types[static_cast<size_t>(id)];
  if (type == PieceType::Control || type == PieceType::Unknown) return {};
  const std::string& piece = vocab_.pieces[static_cast<size_t>(id)];
  if (type == PieceType::Byte) {
    for (int b = 0; b < 256; ++b)
      if (byte_ids_[b] == id) return std::string(1, static_cast<char>(b));
    return {};
  }
  std::string out;
  for (size_t at = 0; at < piece.size();) {
    if (piece.compare(at, vocab_.space.size(), vocab_.space) == 0) {
      out += ' ';
      at += vocab_.space.size();
    } else {
      out += piece[at++];
    }
  }
  const bool at_start = previous < 0 || previous == vocab_.bos;
  if (at_start && vocab_.add_space_prefix && out.starts_with(' ')) out.erase(0, 1);
  return out;
}

}  // namespace slmopt::text
