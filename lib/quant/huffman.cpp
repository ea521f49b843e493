#include "quant/huffman.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <queue>
#include <utility>

#include "core/error.hpp"

namespace slmopt::quant {
namespace {

// Huffman's merge on the present symbols; lengths may exceed any limit.
std::vector<uint8_t> unlimited_lengths(const std::vector<uint64_t>& counts) {
  const size_t n = counts.size();
  std::vector<uint8_t> lengths(n, 0);
  // (weight, node) with nodes numbered in creation order: ties merge the
  // earlier node first, so the lengths do not depend on the queue's internals.
  using Entry = std::pair<uint64_t, size_t>;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> queue;
  std::vector<size_t> parent;
  std::vector<size_t> leaf_node(n, SIZE_MAX);
  for (size_t s = 0; s < n; ++s)
    if (counts[s] > 0) {
      leaf_node[s] = parent.size();
      queue.push({counts[s], parent.size()});
      parent.push_back(SIZE_MAX);
    }
  if (parent.size() == 1) {
    for (size_t s = 0; s < n; ++s)
      if (counts[s] > 0) lengths[s] = 1;
    return lengths;
  }
  while (queue.size() > 1) {
    const Entry a = queue.top();
    queue.pop();
    const Entry b = queue.top();
    queue.pop();
    const size_t node = parent.size();
    parent.push_back(SIZE_MAX);
    parent[a.second] = parent[b.second] = node;
    queue.push({a.first + b.first, node});
  }
  for (size_t s = 0; s < n; ++s) {
    if (leaf_node[s] == SIZE_MAX) continue;
    int depth = 0;
    for (size_t v = leaf_node[s]; parent[v] != SIZE_MAX; v = parent[v]) ++depth;
    lengths[s] = static_cast<uint8_t>(std::min(depth, 255));
  }
  return lengths;
}

}  // namespace

std::vector<uint8_t> huffman_lengths(const std::vector<uint64_t>& counts, int max_length) {
  if (max_length < 1 || max_length > kMaxCodeLength) throw_internal("huffman_lengths: bad length limit");
  size_t present = 0;
  for (uint64_t c : counts) present += c > 0;
  if (present > (size_t{1} << max_length)) throw_internal("huffman_lengths: more symbols than codes of the limit");
  std::vector<uint64_t> c = counts;
  for (;;) {
    std::vector<uint8_t> lengths = unlimited_lengths(c);
    if (lengths.empty() || *std::max_element(lengths.begin(), lengths.end()) <= max_length) return lengths;
    // Flatten the counts (every present symbol keeps at least 1) until the
    // tree is shallow enough: rare symbols lose a little, nothing else changes.
    for (auto& v : c)
      if (v > 0) v = (v + 1) / 2;
  }
}

HuffmanWriter::HuffmanWriter(const std::vector<uint8_t>& lengths) : lengths_(lengths), codes_(lengths.size(), 0) {
  uint32_t count[kMaxCodeLength + 2] = {}, next[kMaxCodeLength + 2] = {};
  for (uint8_t l : lengths) {
    if (l > kMaxCodeLength) throw_internal("HuffmanWriter: code longer than the limit");
    if (l) ++count[l];
  }
  uint32_t code = 0;
  for (int l = 1; l <= kMaxCodeLength; ++l) {
    code = (code + count[l - 1]) << 1;
    next[l] = code;
  }
  for (size_t s = 0; s < lengths.size(); ++s)
    if (lengths[s]) codes_[s] = next[lengths[s]]++;
}

void HuffmanWriter::put(uint32_t symbol) {
  const int length = symbol < lengths_.size() ? lengths_[symbol] : 0;
  if (length == 0) throw_internal("HuffmanWriter: symbol without a code");
  for (int i = length - 1; i >= 0; --i) {
    if ((bit_ & 7) == 0) bytes_.push_back(0);
    bytes_.back() |= static_cast<uint8_t>(((codes_[symbol] >> i) & 1u) << (bit_ & 7));
    ++bit_;
  }
}

HuffmanReader::HuffmanReader(const std::vector<uint8_t>& lengths, const uint8_t* bytes, uint64_t size)
    : bytes_(bytes), size_(size), limit_(size * 8) {
  for (uint8_t l : lengths) {
    if (l > kMaxCodeLength) {
      valid_ = false;
      return;
    }
    if (l) ++counts_[l];
  }
  // Kraft: the codes of each length must fit in what shorter ones leave.
  int64_t left = 1;
  for (int l = 1; l <= kMaxCodeLength; ++l) {
    left = left * 2 - counts_[l];
    if (left < 0) {
      valid_ = false;
      return;
    }
  }
  for (int l = 1; l <= kMaxCodeLength; ++l)
    for (size_t s = 0; s < lengths.size(); ++s)
      if (lengths[s] == l) sorted_.push_back(static_cast<uint32_t>(s));
  // The table: a codeword's bits as the stream holds them (first bit lowest),
  // under every pattern of the bits after it.
  if (lengths.size() >= 4096) return;  // symbols would not fit beside the length
  lookup_.assign(size_t{1} << kLookupBits, 0);
  uint32_t code = 0;
  size_t index = 0;
  for (int l = 1; l <= kLookupBits; ++l) {
    for (uint16_t k = 0; k < counts_[l]; ++k, ++code, ++index) {
      uint32_t reversed = 0;
      for (int b = 0; b < l; ++b) reversed |= ((code >> b) & 1u) << (l - 1 - b);
      const auto entry = static_cast<uint16_t>(sorted_[index] << 4 | static_cast<uint32_t>(l));
      for (uint32_t high = 0; high < (1u << (kLookupBits - l)); ++high) lookup_[reversed | high << l] = entry;
    }
    code <<= 1;
  }
}

int64_t HuffmanReader::next() {
  if (!valid_) return -1;
  int64_t code = 0, first = 0, index = 0;
  for (int l = 1; l <= kMaxCodeLength; ++l) {
    if (bit_ >= limit_) return -1;
    code |= (bytes_[bit_ >> 3] >> (bit_ & 7)) & 1;
    ++bit_;
    const int64_t count = counts_[l];
    if (code - first < count) return sorted_[static_cast<size_t>(index + code - first)];
    index += count;
    first = (first + count) << 1;
    code <<= 1;
  }
  return -1;
}

int64_t HuffmanReader::next_fast() {
  if (!valid_ || lookup_.empty()) return next();
  if (have_ < kLookupBits) {
    // Refill from bit_: whole bytes while they fit, never past the stream.
    uint64_t byte = bit_ >> 3;
    const int skip = static_cast<int>(bit_ & 7);
    window_ = 0;
    have_ = 0;
    while (have_ <= 56 && byte < size_) {
      window_ |= static_cast<uint64_t>(bytes_[byte++]) << have_;
      have_ += 8;
    }
    window_ >>= skip;
    have_ = std::max(0, have_ - skip);
  }
  const uint16_t entry = lookup_[window_ & ((1u << kLookupBits) - 1)];
  const int length = entry & 15;
  if (length == 0 || length > have_) {
    have_ = 0;  // a long codeword or the stream's last bits: the reference reads it
    return next();
  }
  window_ >>= length;
  have_ -= length;
  bit_ += static_cast<uint64_t>(length);
  return entry >> 4;
}

}  // namespace slmopt::quant
