// Trellis-coded quantization (QTIP's bitshift trellis, Tseng et al. 2024).
// Each weight's k-bit code is shifted into a window of the last D codes, and
// the whole window (a state of L = k * D bits), not the code alone, selects
// the weight's value. A Viterbi search chooses all the codes of a tensor at
// once, so the 2^L values act as a vector codebook at k bits a weight: on
// stories260K's matrices tcq4 leaves 1.5-2.9 dB less squared error than nf4
// at the same bits (docs/quantize.md). The values are QTIP's "1MAD" code,
// the byte sum of one LCG step of the state: nearly Gaussian, integers only,
// so a device decodes with neither a table nor floating-point functions.
// The code stream runs on through the rows of a tensor: a row's first
// weights take their window from the previous row's last codes, and D - 1
// leading codes start the first row, so any row decodes on its own. One
// scale per row, refitted by least squares once the codes are chosen.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "quant/bitpack.hpp"
#include "quant/scale_store.hpp"
#include "quant/scheme.hpp"
#include "quant/scheme_families.hpp"
#include "quant/trellis.hpp"

namespace slmopt::quant {

// Bits of earlier codes a state remembers (at least): 8 give 2^8 paths into
// every state, most of the gain of longer trellises at a fraction of the search.
constexpr int kMemoryBits = 8;

int trellis_window(int bits) { return 1 + (kMemoryBits + bits - 1) / bits; }

int32_t trellis_value(uint32_t state) {
  const uint32_t x = state * 34038481u + 76625530u;
  return static_cast<int32_t>((x & 255u) + ((x >> 8) & 255u) + ((x >> 16) & 255u) + (x >> 24)) - 510;
}

namespace {

int64_t leading_codes(int bits) { return trellis_window(bits) - 1; }

// The initial scale is this many row RMS per code unit of deviation: a little
// wider than the row so its tails are reached (measured best on stories260K).
constexpr float kRangeFactor = 1.1f;
constexpr float kValueDeviation = 147.8f;  // of the byte sum of 4 uniform bytes

struct Trellis {
  int bits;
  int state_bits;
  uint32_t states, memories, branches;  // 2^L, 2^(L - k), 2^k
  std::vector<float> values;           // trellis_value of each state
};

Trellis make_trellis(int bits) {
  Trellis t;
  t.bits = bits;
  t.state_bits = bits * trellis_window(bits);
  t.states = 1u << t.state_bits;
  t.branches = 1u << bits;
  t.memories = t.states >> bits;
  t.values.resize(t.states);
  for (uint32_t s = 0; s < t.states; ++s) t.values[s] = static_cast<float>(trellis_value(s));
  return t;
}

void validate_tcq(const QuantParams& p) {
  if (p.bits < 2 || p.bits > 4) throw_bad_input("trellis codes are 2 to 4 bits, got " + std::to_string(p.bits));
  if (p.group != 0) throw_bad_input("trellis codes take one scale per row (tcq<bits>-ch)");
  if (!p.symmetric) throw_bad_input("trellis codes have no minimums");
  validate_group_and_scales(p);
  require_single_level(p, "tcq");
}

std::vector<PartLayout> layout_tcq(const QuantParams& p, int64_t rows, int64_t cols) {
  return {{"codes", p.bits, rows * cols + leading_codes(p.bits)}, {"scales", scale_bits(p.scale_dtype), rows}};
}

// The Viterbi search over `rows` rows of `cols` weights as one sequence (row r
// at scale d[r]): the states that minimise the importance-weighted squared
// error, starting from any state (memory < 0) or from one whose remembered
// bits are `memory`. Restarting at every row would leave a row's first
// weights few values to choose from: on rows of 64 that costs ~40 % more error.
class Search {
 public:
  explicit Search(const Trellis& t)
      : t_(t), cost_(t.states), best_(t.memories), from_(t.memories), scaled_(t.states) {}

  void run(const float* x, const float* importance, int64_t rows, int64_t cols, const float* d, int64_t memory,
           uint32_t* states) {
    const int64_t n = rows * cols;
    back_.resize(static_cast<size_t>(n) * t_.memories);
    scale_row(d[0]);
    std::fill(best_.begin(), best_.end(), 0.0f);
    add_error(x[0], importance ? importance[0] : 1.0f);
    if (memory >= 0)
      for (uint32_t s = 0; s < t_.states; ++s)
        if ((s >> t_.bits) != static_cast<uint32_t>(memory)) cost_[s] = std::numeric_limits<float>::infinity();
    for (int64_t i = 1; i < n; ++i) {
      keep_best_predecessors(back_.data() + static_cast<size_t>(i) * t_.memories);
      if (i % cols == 0) {
        scale_row(d[i / cols]);
        // Costs restart near 0 each row, so float keeps telling paths apart.
        const float least = *std::min_element(best_.begin(), best_.end());
        for (float& b : best_) b -= least;
      }
      add_error(x[i], importance ? importance[i % cols] : 1.0f);
    }
    uint32_t s = static_cast<uint32_t>(std::min_element(cost_.begin(), cost_.end()) - cost_.begin());
    for (int64_t i = n - 1; i >= 0; --i) {
      states[i] = s;
      if (i > 0) {
        const uint32_t m = s >> t_.bits;
        s = m + back_[static_cast<size_t>(i) * t_.memories + m] * t_.memories;
      }
    }
  }

 private:
  void scale_row(float d) {
    for (uint32_t s = 0; s < t_.states; ++s) scaled_[s] = d * t_.values[s];
  }

  // A state's predecessors share its remembered bits and differ in the
  // oldest code: p = m + h * memories for h over the branches. Keeps the
  // cheapest for each m and which h it was.
  void keep_best_predecessors(uint8_t* back) {
    std::copy_n(cost_.begin(), t_.memories, best_.begin());
    std::fill(from_.begin(), from_.end(), 0.0f);
    float* __restrict best = best_.data();
    float* __restrict from = from_.data();
    const uint32_t memories = t_.memories;
    for (uint32_t h = 1; h < t_.branches; ++h) {
      const float* __restrict c = cost_.data() + h * memories;
      const float hf = static_cast<float>(h);
      for (uint32_t m = 0; m < memories; ++m) {
        // Costs are >= 0, so their bits order as integers do: an integer
        // compare vectorises where a float one, which may trap, does not.
        const float cm = c[m], bm = best[m], fm = from[m];
        const bool lower = std::bit_cast<int32_t>(cm) < std::bit_cast<int32_t>(bm);
        from[m] = lower ? hf : fm;
        best[m] = lower ? cm : bm;
      }
    }
    for (uint32_t m = 0; m < memories; ++m) back[m] = static_cast<uint8_t>(from[m]);
  }

  // cost of each state = the best path into its remembered bits + this weight's error.
  void add_error(float x, float importance) {
    for (uint32_t m = 0; m < t_.memories; ++m) {
      const float before = best_[m];
      float* c = cost_.data() + (m << t_.bits);
      const float* v = scaled_.data() + (m << t_.bits);
      for (uint32_t j = 0; j < t_.branches; ++j) {
        const float e = x - v[j];
        c[j] = before + importance * e * e;
      }
    }
  }

  const Trellis& t_;
  std::vector<float> cost_, best_, from_, scaled_;
  std::vector<uint8_t> back_;
};

// Rows searched as one sequence: the search keeps a byte per weight and
// remembered value, so longer tensors go in blocks of about this many weights.
constexpr int64_t kBlockWeights = int64_t{1} << 16;

struct Encoded {
  std::vector<uint32_t> codes;
  std::vector<float> scales;
  double error = 0;
};

Encoded encode_at(const float* w, int64_t rows, int64_t cols, const QuantParams& p, const float* importance,
                  const Trellis& t, float range_factor) {
  Encoded out;
  const int64_t lead = leading_codes(p.bits);
  out.codes.assign(static_cast<size_t>(rows * cols + lead), 0);
  out.scales.resize(static_cast<size_t>(rows));
  if (cols == 0) return out;
  std::vector<float> d(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    double energy = 0;
    for (int64_t c = 0; c < cols; ++c) energy += static_cast<double>(w[r * cols + c]) * w[r * cols + c];
    d[static_cast<size_t>(r)] =
        static_cast<float>(range_factor * std::sqrt(energy / static_cast<double>(cols)) / kValueDeviation);
  }
  Search search(t);
  const int64_t block = std::max<int64_t>(1, kBlockWeights / cols);
  std::vector<uint32_t> states(static_cast<size_t>(std::min(block, rows) * cols));
  int64_t memory = -1;
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t n_rows = std::min(block, rows - r0);
    search.run(w + r0 * cols, importance, n_rows, cols, d.data() + r0, memory, states.data());
    if (r0 == 0)
      for (int64_t j = 0; j < lead; ++j)
        out.codes[static_cast<size_t>(j)] = (states[0] >> (p.bits * (lead - j))) & (t.branches - 1);
    memory = states[static_cast<size_t>(n_rows * cols - 1)] & (t.memories - 1);
    for (int64_t r = r0; r < r0 + n_rows; ++r) {
      const float* x = w + r * cols;
      const uint32_t* st = states.data() + (r - r0) * cols;
      // The path fixed, the least-squares scale can only lower the error.
      double num = 0, den = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const double wi = importance ? importance[c] : 1.0;
        const double v = t.values[st[c]];
        num += wi * x[c] * v;
        den += wi * v * v;
        out.codes[static_cast<size_t>(lead + r * cols + c)] = st[c] & (t.branches - 1);
      }
      const float stored = stored_value(den > 0 ? static_cast<float>(num / den) : 0.0f, p.scale_dtype);
      out.scales[static_cast<size_t>(r)] = stored;
      for (int64_t c = 0; c < cols; ++c) {
        const double e = x[c] - static_cast<double>(stored) * t.values[st[c]];
        out.error += (importance ? importance[c] : 1.0) * e * e;
      }
    }
  }
  return out;
}

std::vector<QuantPart> quantize_tcq(const float* w, int64_t rows, int64_t cols, const QuantParams& p,
                                    const QuantizeOptions& o) {
  const Trellis t = make_trellis(p.bits);
  // The search tries a few ranges for the whole tensor and keeps the best.
  const std::vector<float> factors = o.search ? std::vector<float>{0.9f, 1.0f, 1.1f, 1.2f, 1.3f}
                                              : std::vector<float>{kRangeFactor};
  Encoded best;
  for (float f : factors) {
    Encoded e = encode_at(w, rows, cols, p, o.importance, t, f);
    if (best.codes.empty() || e.error < best.error) best = std::move(e);
  }
  BitWriter codes(static_cast<int64_t>(best.codes.size()), p.bits);
  for (uint32_t c : best.codes) codes.put(c);
  return {{"codes", p.bits, static_cast<int64_t>(best.codes.size()), codes.take()},
          {"scales", scale_bits(p.scale_dtype), rows, pack_scales(best.scales, p.scale_dtype)}};
}

void dequantize_tcq(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out) {
  const int k = q.params.bits;
  const int64_t lead = leading_codes(k);
  const uint32_t mask = (1u << (k * trellis_window(k))) - 1;
  const uint8_t* codes = q.part("codes")->bytes.data();
  const uint8_t* scales = q.part("scales")->bytes.data();
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t first = r * q.cols;  // the row's window starts with the lead codes before it
    uint32_t state = 0;
    for (int64_t j = 0; j < lead; ++j) state = (state << k) | read_code(codes, first + j, k);
    const float d = read_scale(scales, r, q.params.scale_dtype);
    float* dst = out + (r - row_begin) * q.cols;
    for (int64_t c = 0; c < q.cols; ++c) {
      state = ((state << k) | read_code(codes, first + lead + c, k)) & mask;
      dst[c] = d * static_cast<float>(trellis_value(state));
    }
  }
}

}  // namespace

std::vector<uint32_t> trellis_search(const float* x, const float* importance, int64_t n, float d, int bits,
                                     int64_t memory) {
  const Trellis t = make_trellis(bits);
  std::vector<uint32_t> states(static_cast<size_t>(n));
  if (n > 0) Search(t).run(x, importance, 1, n, &d, memory, states.data());
  return states;
}

const Scheme kTrellisScheme = {
    "tcq", "2-4-bit trellis codes (QTIP bitshift, Viterbi-searched), scale per row", 0, validate_tcq, layout_tcq,
    quantize_tcq, dequantize_tcq, nullptr, nullptr, nullptr, nullptr,
};

}  // namespace slmopt::quant
