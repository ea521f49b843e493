// Single-precision matrix product with packed panels and a micro-kernel chosen
// at run time for the CPU (AVX-512, AVX2+FMA, or portable C++), the way
// BLIS/OpenBLAS and ONNX Runtime's MLAS do it: the build targets baseline
// x86-64, the hot loop still uses the widest vectors the machine has.
//
// Each element of C is summed in the same order whatever the thread count, so
// results do not depend on the number of cores. The AVX-512 and AVX2 kernels
// do the same fused multiply-adds in the same order and give identical bits;
// the portable kernel rounds each product (no FMA) and may differ in the last
// bits. SLMOPT_SIMD=portable|avx2|avx512 caps the choice (to reproduce a run
// from another machine).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace slmopt::runtime {

// Element (i, j) of a matrix is data[i * row_stride + j * col_stride]: a
// transposed operand is the same memory with the strides swapped.
struct MatrixView {
  const float* data;
  int64_t row_stride;
  int64_t col_stride;
  float at(int64_t i, int64_t j) const { return data[i * row_stride + j * col_stride]; }
};

inline MatrixView row_major(const float* data, int64_t cols) { return {data, cols, 1}; }
inline MatrixView transposed_view(const float* data, int64_t cols) { return {data, 1, cols}; }

// Computes an MR x NR tile: C(i, j) (+)= sum_p a[p * MR + i] * b[p * ldb + j]
// for i < rows, j < cols; A packed k-major (zero-padded to MR), B either a
// packed panel (ldb = NR, zero-padded) or NR readable columns of B itself.
using MicroKernelFn = void (*)(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc,
                               int64_t rows, int64_t cols, bool accumulate);

struct SgemmKernel {
  const char* name;
  int64_t mr, nr;
  bool (*supported)();
  MicroKernelFn run;
};

// Every micro-kernel, widest first (the table to extend: sgemm_kernels.cpp).
const std::vector<SgemmKernel>& sgemm_kernels();
// The widest one this CPU runs, capped by SLMOPT_SIMD.
const SgemmKernel& sgemm_kernel();

// C[m, n] = A[m, k] * B[k, n] (C row-major with row stride ldc), or C += A * B
// when accumulate is set. Uses up to omp_get_max_threads() threads when the
// product is large enough to pay for them.
void sgemm(int64_t m, int64_t n, int64_t k, MatrixView a, MatrixView b, float* c, int64_t ldc,
           bool accumulate = false);
// Same with a given micro-kernel (tests run each one the CPU supports).
void sgemm_with(const SgemmKernel& kernel, int64_t m, int64_t n, int64_t k, MatrixView a, MatrixView b, float* c,
                int64_t ldc, bool accumulate = false);

// An operand packed once into a kernel's panels, for products that reuse it
// (constant weights): each product then skips packing it. A is packed in
// MR-high panels of its m rows, B in NR-wide panels of its n columns.
enum class Operand { A, B };
struct PackedOperand {
  const SgemmKernel* kernel = nullptr;
  Operand side = Operand::A;
  int64_t outer = 0, k = 0;  // m and k for A, n and k for B
  std::vector<float> panels;
  // The panels from row (A) or column (B) `first` on, of the k block that starts at p0 and is kc deep.
  const float* block(int64_t p0, int64_t first, int64_t kc) const;
};
// Floats a packed operand takes: its outer size rounded up to whole panels, times k.
int64_t packed_floats(const SgemmKernel& kernel, Operand side, int64_t outer, int64_t k);
// `v` is A (outer x k) or B (k x outer).
PackedOperand pack_once(const SgemmKernel& kernel, Operand side, int64_t outer, int64_t k, MatrixView v);
// C[m, n] (+)= A * B where either operand may come packed (then its view is not read).
void sgemm_prepacked(int64_t m, int64_t n, int64_t k, MatrixView a, const PackedOperand* packed_a, MatrixView b,
                     const PackedOperand* packed_b, float* c, int64_t ldc, bool accumulate = false);

// The plain triple loop every kernel is tested against (double accumulation).
void sgemm_reference(int64_t m, int64_t n, int64_t k, MatrixView a, MatrixView b, float* c, int64_t ldc,
                     bool accumulate = false);

}  // namespace slmopt::runtime
