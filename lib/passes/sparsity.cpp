#include "passes/sparsity.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.hpp"
#include "core/rules.hpp"

namespace slmopt::passes {

double SparsityTarget::zero_fraction(int64_t cols) const {
  if (!nm()) return fraction;
  if (cols <= 0) return 0;
  const int64_t full = cols / m, tail = cols % m;
  const int64_t zeros = full * (m - n) + std::max<int64_t>(0, tail - n);
  return static_cast<double>(zeros) / static_cast<double>(cols);
}

SparsityTarget parse_sparsity(const std::string& text, const std::string& where) {
  SparsityTarget t;
  const size_t colon = text.find(':');
  if (colon == std::string::npos) {
    t.fraction = setting_number(text, 0, 1, where);
    return t;
  }
  const int64_t n = setting_integer(text.substr(0, colon), where + " (N of N:M)");
  const int64_t m = setting_integer(text.substr(colon + 1), where + " (M of N:M)");
  if (m < 1 || m > 64 || n < 0 || n > m) throw_usage(where + ": N:M needs 0 <= N <= M <= 64, got '" + text + "'");
  t.n = static_cast<int>(n);
  t.m = static_cast<int>(m);
  return t;
}

std::string format_sparsity(const SparsityTarget& t) {
  if (t.nm()) return std::to_string(t.n) + ":" + std::to_string(t.m);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", t.fraction);
  return buf;
}

int64_t zeros_before(double fraction, int64_t count) {
  return static_cast<int64_t>(std::llround(fraction * static_cast<double>(count)));
}

std::vector<int64_t> keep_highest(const std::vector<double>& score, int64_t remove) {
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return score[static_cast<size_t>(x)] > score[static_cast<size_t>(y)]; });
  std::vector<int64_t> keep(order.begin(), order.end() - std::clamp<int64_t>(remove, 0, static_cast<int64_t>(order.size())));
  std::sort(keep.begin(), keep.end());
  return keep;
}

std::vector<float> magnitude_scores(const std::vector<float>& w) {
  std::vector<float> s(w.size());
  for (size_t i = 0; i < w.size(); ++i) s[i] = std::fabs(w[i]);
  return s;
}

std::vector<float> wanda_scores(const std::vector<float>& w, int64_t rows, int64_t cols, const calib::InputStats& s) {
  if (s.cols != cols || s.groups < 1 || rows % s.groups != 0) throw_internal("wanda_scores: statistics do not fit the weight");
  std::vector<float> out(w.size());
  const int64_t rows_per_group = rows / s.groups;
  for (int64_t g = 0; g < s.groups; ++g) {
    const double* sq = s.sum_sq.data() + g * cols;
    std::vector<float> norm(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; ++j) norm[static_cast<size_t>(j)] = static_cast<float>(std::sqrt(std::max(0.0, sq[j])));
    for (int64_t r = g * rows_per_group; r < (g + 1) * rows_per_group; ++r)
      for (int64_t j = 0; j < cols; ++j) {
        const auto i = static_cast<size_t>(r * cols + j);
        out[i] = std::fabs(w[i]) * norm[static_cast<size_t>(j)];
      }
  }
  return out;
}

std::vector<int64_t> lowest_positions(const std::vector<float>& scores, int64_t begin, int64_t count, int64_t k) {
  k = std::clamp<int64_t>(k, 0, count);
  std::vector<int64_t> idx(static_cast<size_t>(count));
  std::iota(idx.begin(), idx.end(), begin);
  auto less = [&](int64_t a, int64_t b) {
    const float sa = scores[static_cast<size_t>(a)], sb = scores[static_cast<size_t>(b)];
    return sa < sb || (sa == sb && a < b);
  };
  if (k < count) std::nth_element(idx.begin(), idx.begin() + k, idx.end(), less);
  idx.resize(static_cast<size_t>(k));
  return idx;
}

namespace {

int64_t zero_lowest(std::vector<float>& w, const std::vector<float>& scores, int64_t begin, int64_t count, int64_t zeros) {
  const auto idx = lowest_positions(scores, begin, count, zeros);
  for (int64_t i : idx) w[static_cast<size_t>(i)] = 0.0f;
  return static_cast<int64_t>(idx.size());
}

}  // namespace

std::vector<bool> lowest(const std::vector<float>& scores, int64_t zeros) {
  std::vector<bool> chosen(scores.size(), false);
  for (int64_t i : lowest_positions(scores, 0, static_cast<int64_t>(scores.size()), zeros)) chosen[static_cast<size_t>(i)] = true;
  return chosen;
}

int64_t apply_mask(std::vector<float>& w, const std::vector<float>& scores, int64_t rows, int64_t cols,
                   const SparsityTarget& target, bool per_row) {
  int64_t zeroed = 0;
  if (target.nm()) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; c += target.m) {
        const int64_t len = std::min<int64_t>(target.m, cols - c);
        zeroed += zero_lowest(w, scores, r * cols + c, len, len - target.n);
      }
    return zeroed;
  }
  if (!per_row) return zero_lowest(w, scores, 0, rows * cols, zeros_before(target.fraction, rows * cols));
  // Every row its share; the shares add up to round(fraction * rows * cols).
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t zeros = zeros_before(target.fraction, (r + 1) * cols) - zeros_before(target.fraction, r * cols);
    zeroed += zero_lowest(w, scores, r * cols, cols, zeros);
  }
  return zeroed;
}

}  // namespace slmopt::passes
