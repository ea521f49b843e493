#include "runtime/kernels/quantized.hpp"

#include <algorithm>
#include <omp.h>
#include <vector>

#include "core/parallel_errors.hpp"
#include "quant/quantize_weight.hpp"
#include "runtime/kernels/kernel_util.hpp"
#include "runtime/kernels/matmul.hpp"

namespace slmopt::runtime {

namespace {
constexpr int64_t kScratchFloats = 64 * 1024;  // 256 KiB of dequantized rows at a time
}  // namespace

size_t matmul_quantized_rows(const float* a, int64_t m, const QuantTensor& q, float* c) {
  const int64_t n = q.rows, k = q.cols;
  if (n == 0 || m == 0) return 0;
  if (k == 0) {
    std::fill_n(c, m * n, 0.0f);
    return 0;
  }
  const int64_t block = std::clamp<int64_t>(kScratchFloats / k, 16, n);
  const int64_t blocks = (n + block - 1) / block;
  // Blocks of output columns are independent: each thread dequantizes its own
  // rows into its own scratch, so the result does not depend on the threads.
  const int threads = blocks > 1 && static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) > 1e6
                          ? std::min<int>(omp_get_max_threads(), static_cast<int>(blocks))
                          : 1;
  ParallelErrors errors;
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scratch(static_cast<size_t>(block * k));
    quant::RowDecoder decoder(q);  // each thread's blocks come in increasing row order
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b)
      errors.run(b, [&] {
        const int64_t r0 = b * block, nb = std::min(block, n - r0);
        decoder.decode(r0, r0 + nb, scratch.data());
        float_matmul(m, nb, k, row_major(a, k), transposed_view(scratch.data(), k), c + r0, n);
      });
  }
  errors.rethrow();
  return static_cast<size_t>(threads * block * k) * sizeof(float);
}

void matmul_quantized_reference(const float* a, int64_t m, const QuantTensor& q, float* c) {
  std::vector<float> w(static_cast<size_t>(q.rows * q.cols)), wt(w.size());
  quant::dequantize_rows(q, 0, q.rows, w.data());
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t k = 0; k < q.cols; ++k) wt[static_cast<size_t>(k * q.rows + r)] = w[static_cast<size_t>(r * q.cols + k)];
  matmul_reference(a, wt.data(), c, m, q.cols, q.rows);
}

bool gather_quantized(OpContext& c) {
  const Tensor& table = c.input(0);
  const QuantTensor& q = *table.quant();
  if (q.transposed || table.rank() < 1 || normalize_axis(c, c.attr_int("axis", 0), table.rank()) != 0) return false;
  const auto indices = int_values(c.input(1));
  const int64_t dim = q.rows;
  std::vector<int64_t> shape = c.input(1).shape();
  shape.insert(shape.end(), table.shape().begin() + 1, table.shape().end());
  Tensor out(DType::F32, shape);
  float* dst = out.mutable_data<float>();
  std::vector<std::pair<int64_t, size_t>> rows;  // (row, output position), read in row order
  rows.reserve(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    int64_t v = indices[i];
    if (v < -dim || v >= dim) c.fail("index " + std::to_string(v) + " is out of range for a dim of " + std::to_string(dim));
    rows.emplace_back(v < 0 ? v + dim : v, i);
  }
  // In increasing row order one decoder passes a sparse table's mask once.
  std::sort(rows.begin(), rows.end());
  quant::RowDecoder decoder(q);
  for (const auto& [row, i] : rows) decoder.decode(row, row + 1, dst + static_cast<int64_t>(i) * q.cols);
  c.output(0) = std::move(out);
  return true;
}

}  // namespace slmopt::runtime
