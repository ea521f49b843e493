// Low-rank and pruning throughput, each as a ratio against a baseline run
// in the same process: the exact SVD for the randomized one and for the whole
// factorization; a std::sort of the same weights for the pruning methods.
//
//   slmopt_bench_factorize [--quick]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>

#include "calib/gram.hpp"
#include "passes/lowrank.hpp"
#include "passes/sparsegpt.hpp"
#include "passes/sparsity.hpp"
#include "passes/svd.hpp"

using namespace slmopt;

namespace {

template <typename F>
double seconds(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::vector<float> normal(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// A weight with a decaying spectrum, as trained layers have: a random matrix
// times a diagonal ramp.
passes::MatrixD weight(int64_t rows, int64_t cols, uint32_t seed) {
  const auto g = normal(static_cast<size_t>(rows * cols), seed);
  passes::MatrixD m(rows, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m(r, c) = g[static_cast<size_t>(r * cols + c)] / (1.0 + 0.05 * static_cast<double>(c));
  return m;
}

void bench_svd(int64_t rows, int64_t cols, int64_t rank) {
  const passes::MatrixD m = weight(rows, cols, 1);
  passes::Svd exact, fast;
  const double t_exact = seconds([&] { exact = passes::svd_full(m); });
  const double t_fast = seconds([&] { fast = passes::svd_randomized(m, rank); });
  double worst = 0;
  for (int64_t i = 0; i < rank; ++i) worst = std::max(worst, std::abs(fast.s(i) - exact.s(i)) / exact.s(i));
  std::printf("svd %5lldx%-5lld exact %8.3f s | randomized rank %4lld %8.3f s  ratio %.3f  worst sigma error %.1e\n",
              static_cast<long long>(rows), static_cast<long long>(cols), t_exact, static_cast<long long>(rank), t_fast,
              t_fast / t_exact, worst);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) w[static_cast<size_t>(r * cols + c)] = static_cast<float>(m(r, c));
  passes::RankRule rule{passes::RankKind::Fixed, static_cast<double>(rank)};
  const double t_factor = seconds([&] { passes::factorize(w, rows, cols, rule); });
  std::printf("    factorize to rank %lld (randomized above %d on the short side) %8.3f s  ratio to exact SVD %.3f\n",
              static_cast<long long>(rank), 512, t_factor, t_factor / t_exact);
}

void bench_prune(int64_t rows, int64_t cols) {
  const std::vector<float> w = normal(static_cast<size_t>(rows * cols), 2);
  const auto x = normal(static_cast<size_t>(4 * cols * cols / 64), 3);
  const int64_t count = 4 * cols / 64 * 16;
  std::vector<double> gram(static_cast<size_t>(cols * cols), 0.0);
  calib::gram_accumulate(x.data(), std::min<int64_t>(count, static_cast<int64_t>(x.size()) / cols), cols, gram.data());
  calib::gram_symmetrize(cols, gram.data());
  for (int64_t i = 0; i < cols; ++i) gram[static_cast<size_t>(i * cols + i)] += 1.0;
  calib::InputStats stats;
  stats.cols = cols;
  stats.count = 1;
  stats.sum_sq.assign(static_cast<size_t>(cols), 1.0);
  for (int64_t i = 0; i < cols; ++i) stats.sum_sq[static_cast<size_t>(i)] = gram[static_cast<size_t>(i * cols + i)];
  std::vector<float> sorted = w;
  const double t_sort = seconds([&] { std::sort(sorted.begin(), sorted.end()); });
  passes::SparsityTarget half;
  half.fraction = 0.5;
  passes::SparsityTarget two_four;
  two_four.n = 2;
  two_four.m = 4;
  const double mweights = static_cast<double>(rows * cols) / 1e6;
  auto row = [&](const char* name, double t) {
    std::printf("prune %5lldx%-5lld %-20s %8.4f s  %8.1f Mweights/s  ratio to sort %.2f\n", static_cast<long long>(rows),
                static_cast<long long>(cols), name, t, mweights / t, t / t_sort);
  };
  row("sort (baseline)", t_sort);
  for (const auto& [name, target] : std::vector<std::pair<const char*, passes::SparsityTarget>>{{"magnitude 50%", half}, {"magnitude 2:4", two_four}}) {
    std::vector<float> p = w;
    const passes::SparsityTarget& t = target;  // clang 14 lambdas cannot capture bindings
    row(name, seconds([&] { passes::apply_mask(p, passes::magnitude_scores(p), rows, cols, t, false); }));
  }
  {
    std::vector<float> p = w;
    row("wanda 50%", seconds([&] { passes::apply_mask(p, passes::wanda_scores(p, rows, cols, stats), rows, cols, half, true); }));
  }
  for (const auto& [name, target] : std::vector<std::pair<const char*, passes::SparsityTarget>>{{"sparsegpt 50%", half}, {"sparsegpt 2:4", two_four}}) {
    std::vector<float> p = w;
    const passes::SparsityTarget& t = target;
    row(name, seconds([&] { passes::sparsegpt_prune(p, rows, cols, gram.data(), 1, t, {}); }));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  bench_svd(1024, 1024, 128);
  if (!quick) bench_svd(4096, 1024, 128);
  bench_prune(1024, 1024);
  return 0;
}
