// Entropy-coded uniform quantization: `ec<R>-ch`. Each row's weights round to
// a uniform grid whose step is the row's RMS times 2^(h - R), h = log2(2 pi e)/2
// the entropy of a unit Gaussian, so a Gaussian row's codes carry about R bits
// of information each; a canonical Huffman code per tensor stores them in
// about that many. At high rates an entropy-coded uniform grid leaves 1.5 dB
// (a quarter of a bit) above the rate-distortion bound, where the best
// fixed-length scalar codes (NormalFloat, Lloyd-Max) leave 4 dB: at equal size
// the grid can be finer, and unlike vector or trellis codes each weight still
// rounds on its own, so training with straight-through gradients works as it
// does for int codes. The price is variable length: a row's codes start at a
// bit position found from a mark every kMarkRows rows.
//
// Parts: "codes" (the Huffman stream, bytes), "steps" (a byte a row: the step
// is 2^((s - 192) / 8), 0 for an all-zero row), "lengths" (4-bit code lengths
// of the codes -M..M, M the largest magnitude the tensor uses), "marks" (the
// stream's bit position at rows 0, 16, 32, ...). A stored tensor is decoded
// once through before use (check_ec), so a hostile stream is refused
// when it is read, not met halfway through a forward pass.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "quant/bitpack.hpp"
#include "quant/huffman.hpp"
#include "quant/scheme.hpp"
#include "quant/scheme_families.hpp"

namespace slmopt::quant {
namespace {

constexpr double kGaussianEntropyBits = 2.0470956;  // log2(2 pi e) / 2
constexpr int64_t kMarkRows = 16;
constexpr int kStepBias = 192;  // step code of a step of 1

// 2^(k/8) rounded to float: both decoders (and slmblob.h) build steps from these.
constexpr float kEighths[8] = {1.0f, 1.0905077f, 1.1892071f, 1.2968396f, 1.4142135f, 1.5422108f, 1.6817929f, 1.8340081f};

float step_value(uint32_t code) {
  if (code == 0) return 0.0f;
  return std::ldexp(kEighths[code & 7u], static_cast<int>(code >> 3) - kStepBias / 8);
}

int32_t max_code(int rate) { return (1 << (rate + 1)) - 1; }

int64_t marks_of(int64_t rows) { return (rows + kMarkRows - 1) / kMarkRows; }

void validate_ec(const QuantParams& p) {
  if (p.bits < 1 || p.bits > 8) throw_bad_input("entropy-coded rates are 1 to 8 bits, got " + std::to_string(p.bits));
  if (p.group != 0) throw_bad_input("entropy-coded weights take one step per row (ec<bits>-ch)");
  if (!p.symmetric) throw_bad_input("entropy-coded weights have no minimums");
  if (p.scale_dtype != DType::F16) throw_bad_input("entropy-coded steps are stored as bytes; f32 scales do not apply");
  require_single_level(p, "ec");
}

// A negative count marks a part whose length the data sets; its magnitude is
// the expected length for Gaussian weights, which bits-per-weight plans use.
std::vector<PartLayout> layout_ec(const QuantParams& p, int64_t rows, int64_t cols) {
  const double rate = p.bits + 0.03;  // Huffman's loss on a discretised Gaussian, measured
  const auto stream = static_cast<int64_t>(std::ceil(static_cast<double>(rows * cols) * rate / 8.0));
  const auto reach = static_cast<int64_t>(std::ceil(4.0 * std::exp2(p.bits - kGaussianEntropyBits)));
  return {{"codes", 8, -std::max<int64_t>(1, stream)},
          {"steps", 8, rows},
          {"lengths", 4, -(2 * std::min<int64_t>(reach, max_code(p.bits)) + 1)},
          {"marks", 32, marks_of(rows)}};
}

// The Huffman-coded parts of `codes` (rows x cols, each in [-max_code, max_code]).
std::vector<QuantPart> encode_codes(const std::vector<int32_t>& codes, std::vector<uint8_t> steps, int64_t rows,
                                    int64_t cols) {
  int32_t m = 0;
  for (int32_t c : codes) m = std::max(m, c < 0 ? -c : c);
  std::vector<uint64_t> counts(static_cast<size_t>(2 * m + 1), 0);
  for (int32_t c : codes) ++counts[static_cast<size_t>(c + m)];
  if (codes.empty()) counts[0] = 1;  // an empty tensor still has a valid code
  const std::vector<uint8_t> lengths = huffman_lengths(counts);
  HuffmanWriter stream(lengths);
  std::vector<uint32_t> marks;
  for (int64_t r = 0; r < rows; ++r) {
    if (r % kMarkRows == 0) {
      if (stream.bits() > std::numeric_limits<uint32_t>::max())
        throw_bad_input("an entropy-coded tensor of over 4 Gbit; split it or use a fixed-length scheme");
      marks.push_back(static_cast<uint32_t>(stream.bits()));
    }
    for (int64_t c = 0; c < cols; ++c) stream.put(static_cast<uint32_t>(codes[static_cast<size_t>(r * cols + c)] + m));
  }
  std::vector<uint8_t> bytes = stream.take();
  BitWriter length_bits(static_cast<int64_t>(lengths.size()), 4), mark_bits(static_cast<int64_t>(marks.size()), 32);
  for (uint8_t l : lengths) length_bits.put(l);
  for (uint32_t v : marks) mark_bits.put(v);
  const auto n_bytes = static_cast<int64_t>(bytes.size());
  return {{"codes", 8, n_bytes, std::move(bytes)},
          {"steps", 8, rows, std::move(steps)},
          {"lengths", 4, static_cast<int64_t>(lengths.size()), length_bits.take()},
          {"marks", 32, static_cast<int64_t>(marks.size()), mark_bits.take()}};
}

int32_t round_to_code(float v, float step, int32_t limit) {
  if (step == 0.0f) return 0;
  const float q = std::round(v / step);
  return static_cast<int32_t>(std::clamp(q, static_cast<float>(-limit), static_cast<float>(limit)));
}

std::vector<QuantPart> quantize_ec(const float* w, int64_t rows, int64_t cols, const QuantParams& p,
                                   const QuantizeOptions&) {
  const double ratio = std::exp2(kGaussianEntropyBits - p.bits);
  const int32_t limit = max_code(p.bits);
  std::vector<uint8_t> steps(static_cast<size_t>(rows));
  std::vector<int32_t> codes(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = w + r * cols;
    double sum2 = 0;
    for (int64_t c = 0; c < cols; ++c) {
      if (!std::isfinite(x[c])) throw_bad_input("a weight is not finite; entropy-coded steps need finite rows");
      sum2 += static_cast<double>(x[c]) * x[c];
    }
    uint32_t s = 0;
    if (sum2 > 0) {
      const double target = ratio * std::sqrt(sum2 / static_cast<double>(cols));
      s = static_cast<uint32_t>(std::clamp(std::lround(8.0 * std::log2(target)) + kStepBias, 1L, 255L));
    }
    steps[static_cast<size_t>(r)] = static_cast<uint8_t>(s);
    const float step = step_value(s);
    for (int64_t c = 0; c < cols; ++c) codes[static_cast<size_t>(r * cols + c)] = round_to_code(x[c], step, limit);
  }
  return encode_codes(codes, std::move(steps), rows, cols);
}

struct Stored {
  std::vector<uint8_t> lengths;
  int32_t m = 0;
  const uint8_t* steps = nullptr;
  const QuantPart* marks = nullptr;
  const QuantPart* stream = nullptr;
};

Stored stored(const QuantTensor& q) {
  Stored s;
  const QuantPart* lengths = q.part("lengths");
  s.lengths.resize(static_cast<size_t>(lengths->count));
  for (int64_t i = 0; i < lengths->count; ++i) s.lengths[static_cast<size_t>(i)] = static_cast<uint8_t>(read_code(lengths->bytes.data(), i, 4));
  s.m = static_cast<int32_t>(lengths->count / 2);
  s.steps = q.part("steps")->bytes.data();
  s.marks = q.part("marks");
  s.stream = q.part("codes");
  return s;
}

// Decodes rows [row_begin, row_end) into out (null: only checks) and returns
// the stream's bit position after them, or -1 on a stream that is not what
// the writer makes (check_ec reports it; dequantize never meets one once the
// check passed).
// `fast` reads through HuffmanReader's lookup table, otherwise a bit at a time.
int64_t decode_rows(const QuantTensor& q, const Stored& s, int64_t row_begin, int64_t row_end, float* out, bool fast) {
  HuffmanReader reader(s.lengths, s.stream->bytes.data(), s.stream->bytes.size());
  if (!reader.valid()) return -1;
  if (row_begin >= row_end) return 0;
  const int64_t first = row_begin - row_begin % kMarkRows;
  reader.seek(read_code(s.marks->bytes.data(), first / kMarkRows, 32));
  for (int64_t r = first; r < row_end; ++r) {
    if (r % kMarkRows == 0 && reader.position() != read_code(s.marks->bytes.data(), r / kMarkRows, 32)) return -1;
    const float step = step_value(s.steps[r]);
    float* dst = out && r >= row_begin ? out + (r - row_begin) * q.cols : nullptr;
    for (int64_t c = 0; c < q.cols; ++c) {
      const int64_t symbol = fast ? reader.next_fast() : reader.next();
      if (symbol < 0) return -1;
      if (dst) dst[c] = static_cast<float>(symbol - s.m) * step;
    }
  }
  return static_cast<int64_t>(reader.position());
}

void dequantize_ec(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out) {
  if (decode_rows(q, stored(q), row_begin, row_end, out, true) < 0)
    std::fill(out, out + (row_end - row_begin) * q.cols, 0.0f);
}

void check_ec(const QuantTensor& q) {
  const Stored s = stored(q);
  if (s.lengths.size() % 2 == 0 || s.m > max_code(q.params.bits))
    throw_bad_input("entropy-coded tensor: " + std::to_string(s.lengths.size()) +
                    " code lengths, expected an odd count of at most " + std::to_string(2 * max_code(q.params.bits) + 1));
  if (!HuffmanReader(s.lengths, nullptr, 0).valid())
    throw_bad_input("entropy-coded tensor: its code lengths are no prefix code");
  // Every row decodes (nothing is written, so a hostile shape allocates
  // nothing), the marks agree on the way, and the stream ends with the last row.
  const int64_t end = decode_rows(q, s, 0, q.rows, nullptr, true);
  if (end < 0) throw_bad_input("entropy-coded tensor: its code stream is corrupt or disagrees with its row marks");
  if ((end + 7) / 8 != static_cast<int64_t>(s.stream->bytes.size()))
    throw_bad_input("entropy-coded tensor: " + std::to_string(s.stream->bytes.size()) + " bytes of codes, its rows use " +
                    std::to_string((end + 7) / 8));
}

float nearest_ec(const QuantTensor& fitted, int64_t row, int64_t, float v) {
  const float step = step_value(fitted.part("steps")->bytes.data()[row]);
  return static_cast<float>(round_to_code(v, step, max_code(fitted.params.bits))) * step;
}

std::vector<QuantPart> encode_ec(const QuantTensor& fitted, const float* w) {
  const uint8_t* s = fitted.part("steps")->bytes.data();
  std::vector<uint8_t> steps(s, s + fitted.rows);
  std::vector<int32_t> codes(static_cast<size_t>(fitted.rows * fitted.cols));
  for (int64_t r = 0; r < fitted.rows; ++r)
    for (int64_t c = 0; c < fitted.cols; ++c)
      codes[static_cast<size_t>(r * fitted.cols + c)] =
          round_to_code(w[r * fitted.cols + c], step_value(steps[static_cast<size_t>(r)]), max_code(fitted.params.bits));
  return encode_codes(codes, std::move(steps), fitted.rows, fitted.cols);
}

// Every value is an integer code times its row's step: DequantizeLinear's
// form (int8 where the codes fit, i.e. up to ec6; the exporter checks).
std::vector<float> linear_scales_ec(const QuantTensor& q) {
  const uint8_t* steps = q.part("steps")->bytes.data();
  std::vector<float> scales(static_cast<size_t>(q.rows));
  for (int64_t r = 0; r < q.rows; ++r) scales[static_cast<size_t>(r)] = step_value(steps[r]);
  return scales;
}

}  // namespace

void dequantize_ec_reference(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out) {
  if (decode_rows(q, stored(q), row_begin, row_end, out, false) < 0)
    std::fill(out, out + (row_end - row_begin) * q.cols, 0.0f);
}

const Scheme kEntropyScheme = {
    "ec",      "uniform steps of RMS x 2^(2.05 - R) per row, Huffman-coded: about R bits a weight", 0, validate_ec,
    layout_ec, quantize_ec, dequantize_ec, nearest_ec, encode_ec, linear_scales_ec, check_ec,
};

}  // namespace slmopt::quant
