// Which weights of a layer to zero. A layer's weight is viewed as rows (its
// outputs) along its input dimension (cols); scores say how much each weight
// matters and the lowest go. Ties break by position, so the same weights
// always give the same mask.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "calib/stats.hpp"

namespace slmopt::passes {

// Either a fraction of weights to zero, or N:M: in every run of M
// consecutive inputs of a row keep the N that score highest.
struct SparsityTarget {
  double fraction = 0;
  int n = 0, m = 0;  // N:M when m > 0
  bool nm() const { return m > 0; }
  // The fraction of weights zeroed for rows of `cols` inputs.
  double zero_fraction(int64_t cols) const;
};

// "0.5" or "2:4"; Error(Usage) naming `where` otherwise.
SparsityTarget parse_sparsity(const std::string& text, const std::string& where);
std::string format_sparsity(const SparsityTarget& t);

// How many of the first `count` weights a fraction zeroes: round(f * count).
// Pieces cut at these prefixes add up to exactly the total.
int64_t zeros_before(double fraction, int64_t count);

// The indices of the units with the highest scores, all but `remove` of
// them, in increasing order (ties keep the earlier unit).
std::vector<int64_t> keep_highest(const std::vector<double>& score, int64_t remove);

// |w|: plain magnitude.
std::vector<float> magnitude_scores(const std::vector<float>& w);

// |w_ij| * ||x_j|| (Wanda, Sun et al. 2023): a weight matters as much as the
// input it multiplies. Row r of a grouped layer uses group r / (rows / groups).
std::vector<float> wanda_scores(const std::vector<float>& w, int64_t rows, int64_t cols, const calib::InputStats& s);

// Zeroes w where it scores lowest: a fraction over the whole matrix when
// `per_row` is false (magnitude), else the same share of every row (Wanda
// compares the weights feeding one output); N:M within each run of M.
// Returns the number of weights zeroed.
int64_t apply_mask(std::vector<float>& w, const std::vector<float>& scores, int64_t rows, int64_t cols,
                   const SparsityTarget& target, bool per_row);

// The positions of the k lowest scores in [begin, begin + count), ties by position.
std::vector<int64_t> lowest_positions(const std::vector<float>& scores, int64_t begin, int64_t count, int64_t k);

// Marks the `zeros` lowest of `scores` (ties by position): a global
// threshold over several layers' scores laid end to end.
std::vector<bool> lowest(const std::vector<float>& scores, int64_t zeros);

}  // namespace slmopt::passes
