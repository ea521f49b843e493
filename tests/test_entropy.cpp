// The ec scheme: canonical Huffman codes against a plain Huffman merge, the
// uniform steps against their formula, the stream read back from any row, and
// hostile streams refused when a tensor is read.
#include <cmath>
#include <random>

#include "core/error.hpp"
#include "quant/huffman.hpp"
#include "quant/quantize_weight.hpp"
#include "quant/scheme.hpp"
#include "quant/sparse.hpp"
#include "quant/spec.hpp"
#include "test_util.hpp"

using namespace slmopt;

namespace {

// Huffman's total cost (sum of count x length) by the textbook merge: the sum
// of every merged weight.
uint64_t textbook_cost(std::vector<uint64_t> counts) {
  std::erase(counts, 0);
  uint64_t cost = 0;
  while (counts.size() > 1) {
    std::sort(counts.begin(), counts.end());
    const uint64_t merged = counts[0] + counts[1];
    cost += merged;
    counts.erase(counts.begin(), counts.begin() + 2);
    counts.push_back(merged);
  }
  return cost;
}

double kraft(const std::vector<uint8_t>& lengths) {
  double sum = 0;
  for (uint8_t l : lengths)
    if (l) sum += std::ldexp(1.0, -l);
  return sum;
}

void round_trip(const std::vector<uint8_t>& lengths, const std::vector<uint32_t>& symbols) {
  quant::HuffmanWriter writer(lengths);
  for (uint32_t s : symbols) writer.put(s);
  const uint64_t bits = writer.bits();
  const std::vector<uint8_t> bytes = writer.take();
  CHECK(bytes.size() == (bits + 7) / 8);
  quant::HuffmanReader reader(lengths, bytes.data(), bytes.size());
  REQUIRE(reader.valid());
  for (uint32_t s : symbols) REQUIRE(reader.next() == static_cast<int64_t>(s));
  CHECK(reader.position() == bits);
  // The table path, from the start and from a seek into the middle.
  quant::HuffmanReader fast(lengths, bytes.data(), bytes.size());
  uint64_t middle = 0;
  for (size_t i = 0; i < symbols.size(); ++i) {
    if (i == symbols.size() / 2) middle = fast.position();
    REQUIRE(fast.next_fast() == static_cast<int64_t>(symbols[i]));
  }
  CHECK(fast.position() == bits);
  if (bits % 8 == 0) CHECK(fast.next_fast() == -1);  // the stream's end
  fast.seek(middle);
  for (size_t i = symbols.size() / 2; i < symbols.size(); ++i) REQUIRE(fast.next_fast() == static_cast<int64_t>(symbols[i]));
}

Tensor gaussian_rows(int64_t rows, int64_t cols, uint32_t seed) {
  Tensor w(DType::F32, {rows, cols});
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  for (int64_t i = 0; i < w.numel(); ++i) w.mutable_data<float>()[i] = dist(rng);
  return w;
}

Tensor quantize(const Tensor& w, const char* text) {
  const auto spec = quant::parse_spec(text);
  return quant::quantize_weight(w, quant::InputAxis::Rest, *spec.scheme, spec.params, {});
}

}  // namespace

TEST_CASE("Huffman code lengths cost what the textbook merge costs, and the codes read back") {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 60; ++trial) {
    const size_t n = 1 + rng() % 90;
    std::vector<uint64_t> counts(n);
    for (auto& c : counts) c = rng() % 4 == 0 ? 0 : 1 + rng() % 1000;
    const auto lengths = quant::huffman_lengths(counts);
    uint64_t cost = 0;
    size_t present = 0;
    for (size_t s = 0; s < n; ++s) {
      CHECK((lengths[s] == 0) == (counts[s] == 0));
      cost += counts[s] * lengths[s];
      present += counts[s] > 0;
    }
    if (present >= 2) {
      CHECK(cost == textbook_cost(counts));
      CHECK(kraft(lengths) == 1.0);  // complete: no code is wasted
    }
    std::vector<uint32_t> symbols;
    for (size_t s = 0; s < n; ++s)
      for (uint64_t k = 0; k < std::min<uint64_t>(counts[s], 3); ++k) symbols.push_back(static_cast<uint32_t>(s));
    std::shuffle(symbols.begin(), symbols.end(), rng);
    round_trip(lengths, symbols);
  }
  // Counts growing like Fibonacci's make a tree as deep as there are symbols:
  // the limit flattens it to 15 bits, still a prefix code.
  std::vector<uint64_t> fibonacci = {1, 1};
  while (fibonacci.size() < 40) fibonacci.push_back(fibonacci[fibonacci.size() - 1] + fibonacci[fibonacci.size() - 2]);
  const auto limited = quant::huffman_lengths(fibonacci);
  CHECK(*std::max_element(limited.begin(), limited.end()) == quant::kMaxCodeLength);
  CHECK(kraft(limited) <= 1.0);
  std::vector<uint32_t> all(40);
  std::iota(all.begin(), all.end(), 0u);
  round_trip(limited, all);
  // One symbol alone still takes a bit.
  CHECK(quant::huffman_lengths({0, 7, 0}) == std::vector<uint8_t>{0, 1, 0});
  round_trip({0, 1, 0}, {1, 1, 1});
}

TEST_CASE("a Huffman reader refuses lengths no prefix code has and stops at the stream's end") {
  const std::vector<uint8_t> oversubscribed = {1, 1, 1};
  CHECK_FALSE(quant::HuffmanReader(oversubscribed, nullptr, 0).valid());
  const std::vector<uint8_t> too_long = {16, 1};
  CHECK_FALSE(quant::HuffmanReader(too_long, nullptr, 0).valid());
  // An incomplete code: "11" is no symbol's.
  const std::vector<uint8_t> incomplete = {1, 2};
  const uint8_t ones = 0xFF;
  quant::HuffmanReader reader(incomplete, &ones, 1);
  REQUIRE(reader.valid());
  CHECK(reader.next() == -1);
  const uint8_t zeros = 0x00;
  quant::HuffmanReader short_stream(incomplete, &zeros, 1);
  for (int i = 0; i < 8; ++i) CHECK(short_stream.next() == 0);
  CHECK(short_stream.next() == -1);  // past the last byte
}

TEST_CASE("ec steps a row at its RMS x 2^(2.05 - R), codes about R bits a weight and beats nf4 at equal size") {
  const Tensor w = gaussian_rows(40, 256, 11);
  for (int rate : {2, 4, 6}) {
    const std::string text = "ec" + std::to_string(rate) + "-ch";
    INFO(text);
    const Tensor q = quantize(w, text.c_str());
    const QuantTensor& qt = *q.quant();
    const Tensor back = quant::dequantize(q);
    // The plain reference: the step from the formula, each weight rounded on its own.
    const uint8_t* steps = qt.part("steps")->bytes.data();
    const int32_t limit = (1 << (rate + 1)) - 1;
    for (int64_t r = 0; r < 40; ++r) {
      double sum2 = 0;
      for (int64_t c = 0; c < 256; ++c) sum2 += std::pow(static_cast<double>(w.data<float>()[r * 256 + c]), 2);
      const double target = std::exp2(2.0470956 - rate) * std::sqrt(sum2 / 256);
      const long code = std::lround(8 * std::log2(target)) + 192;
      REQUIRE(steps[r] == code);
      const auto step = static_cast<float>(std::exp2((static_cast<double>(code) - 192) / 8));
      for (int64_t c = 0; c < 256; ++c) {
        const float x = w.data<float>()[r * 256 + c];
        const float k = std::clamp(std::round(x / step), static_cast<float>(-limit), static_cast<float>(limit));
        REQUIRE(back.data<float>()[r * 256 + c] == k * step);
      }
    }
    // Gaussian codes carry R bits; Huffman adds a few hundredths, more at 2
    // bits where a few symbols take most of the weights.
    const double code_bits = 8.0 * static_cast<double>(qt.part("codes")->bytes.size()) / static_cast<double>(w.numel());
    UNSCOPED_INFO("code bits " << code_bits);
    CHECK(code_bits > rate - 0.1);
    CHECK(code_bits < rate + (rate <= 2 ? 0.2 : 0.06));
    // Rows decoded from inside a block of 16 equal the whole decode.
    std::vector<float> block(9 * 256);
    quant::dequantize_rows(qt, 19, 28, block.data());
    CHECK(std::equal(block.begin(), block.end(), back.data<float>() + 19 * 256));
    CHECK(quantize(w, text.c_str()).bit_equal(q));
  }
  // At about the same size (ec4 with a byte a row against nf4's f16 scale):
  // 2.3 dB less error in theory, for Gaussian weights.
  const Tensor ec4 = quantize(w, "ec4-ch"), nf4 = quantize(w, "nf4-ch");
  CHECK(ec4.quant()->bits_per_weight() < nf4.quant()->bits_per_weight() + 0.12);
  CHECK(std::pow(test::relative_error(w, quant::dequantize(ec4)), 2) <
        0.7 * std::pow(test::relative_error(w, quant::dequantize(nf4)), 2));
  CHECK_THROWS_WITH(quant::parse_spec("ec4-g32"), Catch::Contains("one step per row"));
  CHECK_THROWS_WITH(quant::parse_spec("ec4-ch-f32"), Catch::Contains("stored as bytes"));
  CHECK_THROWS_WITH(quant::parse_spec("ec4-ch-asym"), Catch::Contains("no minimums"));
}

TEST_CASE("ec: GPTQ's hooks round on the fitted steps, and zero rows and outliers are kept exact or clipped") {
  Tensor w = gaussian_rows(20, 64, 2);
  float* v = w.mutable_data<float>();
  for (int64_t c = 0; c < 64; ++c) v[3 * 64 + c] = 0.0f;  // an all-zero row
  const auto spec = quant::parse_spec("ec3-ch");
  const Tensor q = quantize(w, "ec3-ch");
  const QuantTensor& qt = *q.quant();
  const Tensor back = quant::dequantize(q);
  for (int64_t c = 0; c < 64; ++c) CHECK(back.data<float>()[3 * 64 + c] == 0.0f);
  // A weight 16 x its row's RMS, past ec3's largest code (15 steps, 7.75 x RMS).
  Tensor wide = gaussian_rows(2, 256, 5);
  wide.mutable_data<float>()[300] = 100.0f;
  const Tensor clipped = quant::dequantize(quantize(wide, "ec3-ch"));
  CHECK(clipped.data<float>()[300] > 40.0f);
  CHECK(clipped.data<float>()[300] < 60.0f);
  // Pruned weights: a variable-length stream has no codes to drop, so it stays
  // dense even where its byte count happens to equal the weight count.
  Tensor pruned = gaussian_rows(16, 64, 6);
  for (int64_t i = 0; i < pruned.numel(); i += 2) pruned.mutable_data<float>()[i] = 0.0f;
  int64_t kept = 0;
  for (const char* text : {"ec4-ch", "ec8-ch", "tcq4-ch"}) {
    const Tensor dense = quantize(pruned, text);
    const Tensor stored = quant::with_sparse_mask(dense, quant::nonzero_mask(pruned.data<float>(), pruned.numel(), kept));
    CHECK_FALSE(quant::is_sparse(*stored.quant()));
    CHECK(stored.bit_equal(dense));
  }
  CHECK(spec.scheme->encode(qt, v) == qt.parts);
  for (int64_t r = 0; r < 20; ++r)
    for (int64_t c = 0; c < 64; c += 9) CHECK(spec.scheme->nearest(qt, r, c, v[r * 64 + c]) == back.data<float>()[r * 64 + c]);
}

TEST_CASE("ec: a stored tensor whose stream, lengths or marks are damaged is refused by name") {
  const Tensor q = quantize(gaussian_rows(40, 33, 4), "ec4-ch");
  const QuantTensor good = *q.quant();
  CHECK_NOTHROW(quant::validate_quant_tensor(good));
  auto with_part = [&](const char* name, std::vector<uint8_t> bytes, int64_t count) {
    QuantTensor bad = good;
    for (auto& p : bad.parts)
      if (p.name == name) {
        p.bytes = std::move(bytes);
        p.count = count;
      }
    return bad;
  };
  auto bytes_of = [&](const char* name) {
    const QuantPart* p = good.part(name);
    return std::vector<uint8_t>(p->bytes.data(), p->bytes.data() + p->bytes.size());
  };
  auto refused = [](const QuantTensor& t) {
    try {
      quant::validate_quant_tensor(t);
    } catch (const Error& e) {
      return e.kind() == ErrorKind::BadInput;
    }
    return false;
  };
  std::vector<uint8_t> stream = bytes_of("codes");
  const auto n = static_cast<int64_t>(stream.size());
  // Truncated, one byte too many, all ones (drifting from the marks). A flipped
  // bit may decode to codes of the same lengths: the blob's checksums catch it.
  CHECK(refused(with_part("codes", std::vector<uint8_t>(stream.begin(), stream.end() - 1), n - 1)));
  std::vector<uint8_t> longer = stream;
  longer.push_back(0);
  CHECK(refused(with_part("codes", longer, n + 1)));
  CHECK(refused(with_part("codes", std::vector<uint8_t>(stream.size(), 0xFF), n)));
  // A mark past the stream, lengths over-subscribed or of an even count.
  std::vector<uint8_t> marks = bytes_of("marks");
  marks[5] = 0x7F;
  CHECK(refused(with_part("marks", marks, good.part("marks")->count)));
  marks = bytes_of("marks");
  marks[4] += 1;  // row 16's mark a bit off where its codes start
  CHECK(refused(with_part("marks", marks, good.part("marks")->count)));
  const int64_t symbols = good.part("lengths")->count;
  CHECK(refused(with_part("lengths", std::vector<uint8_t>((symbols + 1) / 2, 0x11), symbols)));
  CHECK(refused(with_part("lengths", std::vector<uint8_t>(1, 0x11), 2)));
  CHECK(refused(with_part("lengths", std::vector<uint8_t>(200, 0x44), 399)));  // more codes than ec4 has
}
