// MatMul (numpy semantics: 1-D promotion, broadcast batch dims) and Gemm.
#include "runtime/kernels/matmul.hpp"
#include "runtime/session.hpp"

#include <Eigen/Core>

#include "quant/quantize_weight.hpp"
#include "runtime/kernels/kernel_util.hpp"
#include "runtime/kernels/quantized.hpp"

namespace slmopt::runtime {

namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using StridedMap = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;

bool eigen_layout(const MatrixView& v) { return v.col_stride == 1 || v.row_stride == 1; }

// Calls fn with an Eigen expression of the rows x cols matrix v (row-major or transposed).
template <class Fn>
void with_eigen(const MatrixView& v, int64_t rows, int64_t cols, Fn&& fn) {
  if (v.col_stride == 1) fn(StridedMap(v.data, rows, cols, Eigen::OuterStride<>(v.row_stride)));
  else fn(StridedMap(v.data, cols, rows, Eigen::OuterStride<>(v.col_stride)).transpose());
}

}  // namespace

bool float_matmul_uses_sgemm(int64_t m, int64_t n, int64_t k, const MatrixView& a, const MatrixView& b) {
  constexpr int64_t kNarrow = 4;
  return std::min(m, n) >= kNarrow || k == 0 || !eigen_layout(a) || !eigen_layout(b);
}

void float_matmul(int64_t m, int64_t n, int64_t k, MatrixView a, MatrixView b, float* c, int64_t ldc,
                  bool accumulate, const PackedOperand* packed_a, const PackedOperand* packed_b) {
  if (float_matmul_uses_sgemm(m, n, k, a, b)) {
    sgemm_prepacked(m, n, k, a, packed_a, b, packed_b, c, ldc, accumulate);
    return;
  }
  Eigen::Map<RowMat, 0, Eigen::OuterStride<>> C(c, m, n, Eigen::OuterStride<>(ldc));
  with_eigen(a, m, k, [&](const auto& A) {
    with_eigen(b, k, n, [&](const auto& B) {
      if (accumulate) C.noalias() += A * B;
      else C.noalias() = A * B;
    });
  });
}

void matmul_fast(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n) {
  float_matmul(m, n, k, row_major(a, k), row_major(b, n), c, n);
}
void matmul_fast(const double* a, const double* b, double* c, int64_t m, int64_t k, int64_t n) {
  using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const Mat> A(a, m, k);
  Eigen::Map<const Mat> B(b, k, n);
  Eigen::Map<Mat> C(c, m, n);
  C.noalias() = A * B;
}

namespace {

template <class T>
void product(const T* a, const T* b, T* c, int64_t m, int64_t k, int64_t n) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    if (k == 0) {
      std::fill(c, c + m * n, T(0));
      return;
    }
    matmul_fast(a, b, c, m, k, n);
  } else {
    matmul_reference(a, b, c, m, k, n);
  }
}

// A [..., M, K] times a quantized weight [K, N] (stored as N rows of K).
bool matmul_quantized_op(OpContext& c) {
  const Tensor& b = c.input(1);
  const QuantTensor& q = *b.quant();
  if (!q.transposed || b.rank() != 2) return false;
  Tensor a = widen_to_float(quant::dequantize(c.input(0)));
  if (a.dtype() != DType::F32 || a.rank() == 0) return false;
  if (a.shape().back() != q.cols)
    c.fail("inner dimensions differ: " + shape_to_string(a.shape()) + " x " + shape_to_string(b.shape()));
  std::vector<int64_t> out_shape = a.shape();
  out_shape.back() = q.rows;
  Tensor out(DType::F32, out_shape);
  c.scratch_bytes = matmul_quantized_rows(a.data<float>(), a.numel() / std::max<int64_t>(q.cols, 1), q, out.mutable_data<float>());
  c.output(0) = narrow_from_float(out, c.input(0).dtype());
  return true;
}

void matmul_op(OpContext& c) {
  if (c.input(1).is_quantized() && matmul_quantized_op(c)) return;
  Tensor a = widen_to_float(quant::dequantize(c.input(0))), b = widen_to_float(quant::dequantize(c.input(1)));
  if (a.dtype() != b.dtype()) c.fail("inputs have different types");
  if (a.rank() == 0 || b.rank() == 0) c.fail("inputs must have rank >= 1");
  std::vector<int64_t> as = a.shape(), bs = b.shape();
  const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), 1);
  if (b_vec) bs.push_back(1);
  const int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  if (bs[bs.size() - 2] != k)
    c.fail("inner dimensions differ: " + shape_to_string(c.input(0).shape()) + " x " + shape_to_string(c.input(1).shape()));
  std::vector<int64_t> abatch(as.begin(), as.end() - 2), bbatch(bs.begin(), bs.end() - 2);
  auto batch = broadcast_shape(c, abatch, bbatch);
  std::vector<int64_t> out_shape = batch;
  if (!a_vec) out_shape.push_back(m);
  if (!b_vec) out_shape.push_back(n);
  Tensor out(a.dtype(), out_shape);
  auto sa = broadcast_strides(abatch, batch), sb = broadcast_strides(bbatch, batch);
  visit_arithmetic(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.mutable_data<T>();
    for_each_broadcast2(batch, sa, sb, [&](int64_t i, int64_t ia, int64_t ib) {
      product(pa + ia * m * k, pb + ib * k * n, po + i * m * n, m, k, n);
    });
  });
  c.output(0) = narrow_from_float(out, c.input(0).dtype());
}

template <class T>
std::vector<T> transposed(const T* src, int64_t rows, int64_t cols) {
  std::vector<T> t(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[static_cast<size_t>(j * rows + i)] = src[i * cols + j];
  return t;
}

// out = op(A) * op(B) (+ out when accumulate) for float and integer types.
void gemm_product(const OpContext& ctx, const Tensor& a, const Tensor& b, bool ta, bool tb, int64_t m, int64_t k,
                  int64_t n, Tensor& out, bool accumulate) {
  visit_arithmetic(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.mutable_data<T>();
    if constexpr (std::is_same_v<T, float>) {
      // Transposed operands are read through strided views, never copied.
      const MatrixView va = ta ? transposed_view(pa, m) : row_major(pa, k);
      const MatrixView vb = tb ? transposed_view(pb, k) : row_major(pb, n);
      // A constant transposed B (a Linear layer's weight) is packed once per
      // session; a row-major one is read in place anyway.
      const bool pack_b = tb && ctx.session && float_matmul_uses_sgemm(m, n, k, va, vb);
      const PackedOperand* packed_b = pack_b ? ctx.session->packed_constant(vb, Operand::B, n, k) : nullptr;
      float_matmul(m, n, k, va, vb, po, n, accumulate, nullptr, packed_b);
    } else if constexpr (std::is_same_v<T, double>) {
      using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
      Eigen::Map<const Mat> A(pa, a.shape()[0], a.shape()[1]), B(pb, b.shape()[0], b.shape()[1]);
      Eigen::Map<Mat> C(po, m, n);
      if (k == 0) C.setZero();
      else if (ta && tb) C.noalias() = A.transpose() * B.transpose();
      else if (ta) C.noalias() = A.transpose() * B;
      else if (tb) C.noalias() = A * B.transpose();
      else C.noalias() = A * B;
    } else {
      std::vector<T> at, bt;
      if (ta) pa = (at = transposed(pa, k, m)).data();
      if (tb) pb = (bt = transposed(pb, n, k)).data();
      product(pa, pb, po, m, k, n);
    }
  });
}

void gemm_op(OpContext& c) {
  const bool ta = c.attr_int("transA", 0) != 0, tb = c.attr_int("transB", 0) != 0;
  // A quantized B is read in place when its rows are Gemm's output columns.
  const QuantTensor* qb = c.input(1).quant();
  const bool quant_path = qb && c.input(1).rank() == 2 && qb->transposed != tb;
  Tensor a = widen_to_float(quant::dequantize(c.input(0)));
  Tensor b = quant_path ? c.input(1) : widen_to_float(quant::dequantize(c.input(1)));
  if (!quant_path && c.input(1).is_quantized()) c.scratch_bytes = b.nbytes();  // the whole weight, dequantized
  if (a.rank() != 2 || b.rank() != 2) c.fail("A and B must be matrices");
  if (quant_path && a.dtype() != DType::F32) c.fail("a quantized B needs float32 A");
  const double alpha = c.attr_float("alpha", 1.0f), beta = c.attr_float("beta", 1.0f);
  const int64_t m = ta ? a.shape()[1] : a.shape()[0], k = ta ? a.shape()[0] : a.shape()[1];
  const int64_t n = tb ? b.shape()[0] : b.shape()[1], kb = tb ? b.shape()[1] : b.shape()[0];
  if (k != kb) c.fail("inner dimensions differ");
  Tensor out(a.dtype(), {m, n});
  const bool has_bias = c.has_input(2) && beta != 0;
  const Tensor bias = has_bias ? broadcast_to(c, widen_to_float(quant::dequantize(c.input(2))), {m, n}) : Tensor();
  // float32 with alpha 1: C starts as beta * bias and the product is added to it (one pass over C less).
  const bool bias_first = has_bias && !quant_path && alpha == 1.0 && a.dtype() == DType::F32;
  if (bias_first) {
    if (bias.dtype() != DType::F32) c.fail("C must have the type of A");
    const float* pc = bias.data<float>();
    float* po = out.mutable_data<float>();
    for (int64_t i = 0; i < m * n; ++i) po[i] = static_cast<float>(beta * pc[i]);
  }
  if (quant_path) {
    if (ta) {
      Tensor at(DType::F32, {m, k});
      auto tr = transposed(a.data<float>(), k, m);
      std::copy(tr.begin(), tr.end(), at.mutable_data<float>());
      a = at;
    }
    c.scratch_bytes = matmul_quantized_rows(a.data<float>(), m, *qb, out.mutable_data<float>());
  } else {
    gemm_product(c, a, b, ta, tb, m, k, n, out, bias_first);
  }
  if (!bias_first)
    visit_arithmetic(a.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* po = out.mutable_data<T>();
      if (alpha != 1.0)
        for (int64_t i = 0; i < m * n; ++i) po[i] = static_cast<T>(alpha * po[i]);
      if (has_bias) {
        const T* pc = bias.data<T>();
        for (int64_t i = 0; i < m * n; ++i) po[i] = static_cast<T>(po[i] + beta * pc[i]);
      }
    });
  c.output(0) = narrow_from_float(out, c.input(0).dtype());
}

}  // namespace

void register_matmul(KernelRegistry& r) {
  r.add("", "MatMul", matmul_op, QuantInputs::Consume);
  r.add("", "Gemm", gemm_op, QuantInputs::Consume);
}

}  // namespace slmopt::runtime
