// What generate and eval need of a tokenizer, whichever algorithm it runs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace slmopt::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Ids of `text`, without BOS.
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  // The bytes token `id` stands for when it follows `previous` (-1 at the start).
  virtual std::string decode(int64_t id, int64_t previous) const = 0;
  virtual int64_t size() const = 0;
  virtual int64_t bos() const = 0;  // -1 when there is none
  virtual int64_t eos() const = 0;

  std::string decode(const std::vector<int64_t>& ids) const {
    std::string out;
    int64_t previous = -1;
    for (int64_t id : ids) {
      out += decode(id, previous);
      previous = id;
    }
    return out;
  }
};

}  // namespace slmopt::text
