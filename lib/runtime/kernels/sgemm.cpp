// The sgemm driver: Goto/BLIS loop order. For each block of columns of B and
// each block of k, B is packed into NR-wide panels (shared by the threads)
// unless its rows are contiguous, when whole panels are read in place;
// for each block of rows of A, A is packed into MR-high panels, and the
// threads split the B panels between them. Either operand may instead come
// packed once (pack_once: constant weights). Blocks are sized so a packed A
// block stays in L2 and one B panel in L1.
#include "runtime/kernels/sgemm.hpp"

#include "core/error.hpp"

#include <omp.h>

#include <algorithm>
#include <vector>

namespace slmopt::runtime {
namespace {

constexpr int64_t kBlockK = 256, kBlockM = 192, kBlockN = 2048;
// Below this many multiply-adds a second thread costs more than it saves.
constexpr int64_t kParallelWork = 1 << 18;

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// Rows [i0, i0 + rows) x columns [p0, p0 + kc) of A into MR-high panels, k-major.
void pack_a(const MatrixView& a, int64_t i0, int64_t rows, int64_t p0, int64_t kc, int64_t mr, float* dst) {
  for (int64_t ir = 0; ir < rows; ir += mr) {
    const int64_t h = std::min(mr, rows - ir);
    for (int64_t p = 0; p < kc; ++p, dst += mr) {
      const float* src = a.data + (i0 + ir) * a.row_stride + (p0 + p) * a.col_stride;
      for (int64_t i = 0; i < h; ++i) dst[i] = src[i * a.row_stride];
      for (int64_t i = h; i < mr; ++i) dst[i] = 0.0f;
    }
  }
}

// Rows [p0, p0 + kc) x columns [j0 + panel * NR, ...) of B into one NR-wide panel, k-major.
void pack_b_panel(const MatrixView& b, int64_t p0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float* dst) {
  const float* src = b.data + p0 * b.row_stride + j0 * b.col_stride;
  if (b.col_stride == 1 && cols == nr) {
    // The common case, a whole panel of a row-major B: a plain loop the
    // compiler vectorizes (a memcpy call per 32 floats cost 15 % of a product).
    for (int64_t p = 0; p < kc; ++p, dst += nr, src += b.row_stride)
      for (int64_t j = 0; j < nr; ++j) dst[j] = src[j];
    return;
  }
  for (int64_t p = 0; p < kc; ++p, dst += nr, src += b.row_stride) {
    for (int64_t j = 0; j < cols; ++j) dst[j] = src[j * b.col_stride];
    for (int64_t j = cols; j < nr; ++j) dst[j] = 0.0f;
  }
}

// Packing space of the calling thread, kept between calls: a fresh zeroed
// vector per product cost a memset and page faults every time.
float* packing_space(std::vector<float>& space, size_t floats) {
  if (space.size() < floats) space.resize(floats);
  return space.data();
}

}  // namespace

void sgemm_reference(int64_t m, int64_t n, int64_t k, MatrixView a, MatrixView b, float* c, int64_t ldc,
                     bool accumulate) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double sum = accumulate ? c[i * ldc + j] : 0.0;
      for (int64_t p = 0; p < k; ++p) sum += static_cast<double>(a.at(i, p)) * b.at(p, j);
      c[i * ldc + j] = static_cast<float>(sum);
    }
}

namespace {

// The loops over blocks. panels_of_a(i0, mc, p0, kc) gives the MR-high panels
// of rows [i0, i0 + mc) and columns [p0, p0 + kc) of A; every thread of the
// team calls it and gets the same pointer. B comes packed (packed_b) or is
// packed here.
template <class PanelsOfA>
void run_blocks(const SgemmKernel& kernel, int64_t m, int64_t n, int64_t k, const PanelsOfA& panels_of_a, MatrixView b,
                const PackedOperand* packed_b, float* c, int64_t ldc, bool accumulate) {
  const int64_t mr = kernel.mr, nr = kernel.nr;
  const int64_t block_n = round_up(std::min(kBlockN, n), nr), block_k = std::min(kBlockK, k);
  thread_local std::vector<float> space_b;
  float* const b_space = packed_b ? nullptr : packing_space(space_b, static_cast<size_t>(block_n * block_k));
  const int threads = m * n * k >= kParallelWork && !omp_in_parallel() ? omp_get_max_threads() : 1;
  // A whole NR-wide panel of a B with contiguous rows is read where it is
  // (nullptr: pack it). Packing copies every element once more; measured, it
  // cost more than it saved even for the 64x576x1536 FFN, whose panels eight
  // A panels reuse (embedding model -7 %, FFN -5 %).
  auto panel_in_place = [&](int64_t p0, int64_t j, int64_t cols) -> const float* {
    return !packed_b && b.col_stride == 1 && cols == nr ? b.data + p0 * b.row_stride + j : nullptr;
  };

#pragma omp parallel num_threads(threads) if (threads > 1)
  for (int64_t j0 = 0; j0 < n; j0 += kBlockN) {
    const int64_t nc = std::min(kBlockN, n - j0), panels_n = (nc + nr - 1) / nr;
    const int64_t panels_to_pack = packed_b ? 0 : panels_n;
    for (int64_t p0 = 0; p0 < k; p0 += kBlockK) {
      const int64_t kc = std::min(kBlockK, k - p0);
      const bool add = accumulate || p0 > 0;
#pragma omp for schedule(static)
      for (int64_t jp = 0; jp < panels_to_pack; ++jp) {
        const int64_t cols = std::min(nr, nc - jp * nr);
        if (!panel_in_place(p0, j0 + jp * nr, cols)) pack_b_panel(b, p0, kc, j0 + jp * nr, cols, nr, b_space + jp * nr * kc);
      }
      for (int64_t i0 = 0; i0 < m; i0 += kBlockM) {
        const int64_t mc = std::min(kBlockM, m - i0), panels_m = (mc + mr - 1) / mr;
        const float* packed_a = panels_of_a(i0, mc, p0, kc);
#pragma omp for schedule(static)
        for (int64_t jp = 0; jp < panels_n; ++jp) {
          const int64_t cols = std::min(nr, nc - jp * nr);
          const float* in_place = panel_in_place(p0, j0 + jp * nr, cols);
          const float* bp = in_place ? in_place
                            : packed_b ? packed_b->block(p0, j0 + jp * nr, kc)
                                       : b_space + jp * nr * kc;
          const int64_t ldb = in_place ? b.row_stride : nr;
          for (int64_t ip = 0; ip < panels_m; ++ip) {
            const int64_t rows = std::min(mr, mc - ip * mr);
            float* ct = c + (i0 + ip * mr) * ldc + j0 + jp * nr;
            kernel.run(kc, packed_a + ip * mr * kc, bp, ldb, ct, ldc, rows, cols, add);
          }
        }
      }
    }
  }
}

// An empty product, or k of 0: C is cleared (or kept) and there are no blocks to run.
bool trivial_product(int64_t m, int64_t n, int64_t k, float* c, int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return true;
  if (k > 0) return false;
  if (!accumulate)
    for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
  return true;
}

// C (+)= A * B; A packed per block unless it comes packed.
void product(const SgemmKernel& kernel, int64_t m, int64_t n, int64_t k, MatrixView a,
             const PackedOperand* packed_a, MatrixView b, const PackedOperand* packed_b, float* c, int64_t ldc,
             bool accumulate) {
  if (trivial_product(m, n, k, c, ldc, accumulate)) return;
  if (packed_a) {
    auto block = [&](int64_t i0, int64_t, int64_t p0, int64_t kc) { return packed_a->block(p0, i0, kc); };
    run_blocks(kernel, m, n, k, block, b, packed_b, c, ldc, accumulate);
    return;
  }
  const int64_t block_m = round_up(std::min(kBlockM, m), kernel.mr), block_k = std::min(kBlockK, k);
  thread_local std::vector<float> space_a;
  float* const a_space = packing_space(space_a, static_cast<size_t>(block_m * block_k));
  auto pack_block = [&](int64_t i0, int64_t mc, int64_t p0, int64_t kc) -> const float* {
#pragma omp single
    pack_a(a, i0, mc, p0, kc, kernel.mr, a_space);
    return a_space;
  };
  run_blocks(kernel, m, n, k, pack_block, b, packed_b, c, ldc, accumulate);
}

}  // namespace

void sgemm_with(const SgemmKernel& kernel, int64_t m, int64_t n, int64_t k, MatrixView a, MatrixView b, float* c,
                int64_t ldc, bool accumulate) {
  product(kernel, m, n, k, a, nullptr, b, nullptr, c, ldc, accumulate);
}

namespace {
int64_t panel_width(const SgemmKernel& kernel, Operand side) { return side == Operand::A ? kernel.mr : kernel.nr; }
}  // namespace

// Laid out as the driver packs its blocks: for each block of k (p0), every
// row (A) or column (B) in panels; those from `first` on start first * kc
// floats into the block.
const float* PackedOperand::block(int64_t p0, int64_t first, int64_t kc) const {
  return panels.data() + p0 * round_up(outer, panel_width(*kernel, side)) + first * kc;
}

int64_t packed_floats(const SgemmKernel& kernel, Operand side, int64_t outer, int64_t k) {
  return round_up(std::max<int64_t>(outer, 0), panel_width(kernel, side)) * std::max<int64_t>(k, 0);
}

PackedOperand pack_once(const SgemmKernel& kernel, Operand side, int64_t outer, int64_t k, MatrixView v) {
  PackedOperand packed{&kernel, side, std::max<int64_t>(outer, 0), std::max<int64_t>(k, 0), {}};
  const int64_t width = panel_width(kernel, side), padded = round_up(packed.outer, width);
  packed.panels.resize(static_cast<size_t>(packed_floats(kernel, side, outer, k)));
  for (int64_t p0 = 0; p0 < packed.k && packed.outer > 0; p0 += kBlockK) {
    const int64_t kc = std::min(kBlockK, packed.k - p0);
    float* dst = packed.panels.data() + p0 * padded;
    if (side == Operand::A) {
      pack_a(v, 0, packed.outer, p0, kc, width, dst);
    } else {
      for (int64_t j = 0; j < packed.outer; j += width)
        pack_b_panel(v, p0, kc, j, std::min(width, packed.outer - j), width, dst + j * kc);
    }
  }
  return packed;
}

void sgemm_prepacked(int64_t m, int64_t n, int64_t k, MatrixView a, const PackedOperand* packed_a, MatrixView b,
                     const PackedOperand* packed_b, float* c, int64_t ldc, bool accumulate) {
  const SgemmKernel& kernel = packed_a ? *packed_a->kernel : packed_b ? *packed_b->kernel : sgemm_kernel();
  auto matches = [&](const PackedOperand* p, Operand side, int64_t outer) {
    return !p || (p->kernel == &kernel && p->side == side && p->outer == outer && p->k == k);
  };
  if (!matches(packed_a, Operand::A, m) || !matches(packed_b, Operand::B, n))
    throw_internal("sgemm: a packed operand does not match the product's shape or kernel");
  product(kernel, m, n, k, a, packed_a, b, packed_b, c, ldc, accumulate);
}

void sgemm(int64_t m, int64_t n, int64_t k, MatrixView a, MatrixView b, float* c, int64_t ldc, bool accumulate) {
  sgemm_with(sgemm_kernel(), m, n, k, a, b, c, ldc, accumulate);
}

}  // namespace slmopt::runtime
