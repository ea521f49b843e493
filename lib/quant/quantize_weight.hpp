// Quantized weights as tensors: quantize a float weight into a QuantTensor
// (viewed as output-channel rows along the input dimension) and back.
#pragma once

#include <memory>
#include <vector>

#include "core/tensor.hpp"
#include "quant/scheme.hpp"

namespace slmopt::quant {

// How a weight's axes map to (rows, cols): MatMul's B is [K, N] (input axis
// first: rows are its N columns, stored transposed); Gemm with transB, Conv
// and Gather tables put the output channel first: rows = shape[0].
enum class InputAxis { First, Rest };

// The rows x cols float matrix that would be quantized, row-major.
std::vector<float> weight_rows(const Tensor& w, InputAxis axis, int64_t& rows, int64_t& cols);

// A QuantTensor with w's scheme, params, shape and rows x cols view but no
// parts yet; `rows` receives the matrix to quantize.
std::shared_ptr<QuantTensor> new_quant_tensor(const Tensor& w, InputAxis axis, const Scheme& scheme,
                                              const QuantParams& params, std::vector<float>& rows);

Tensor quantize_weight(const Tensor& w, InputAxis axis, const Scheme& scheme, const QuantParams& params,
                       const QuantizeOptions& options);

// The mask of w's non-zero weights in the rows x cols order its axis gives,
// when storing `code_bits` codes sparse (quant/sparse.hpp) costs fewer bits
// than dense; empty otherwise.
std::vector<uint8_t> sparse_mask_if_smaller(const Tensor& w, InputAxis axis, int code_bits);

// Quantized q stored sparse under `mask` (a no-op for an empty mask).
Tensor with_sparse_mask(const Tensor& q, std::vector<uint8_t> mask);

// Decodes q's matrix a block of rows at a time. A compact sparse tensor is
// read in place: only the block's codes are expanded (quant/sparse.hpp), and
// the count of weights kept before the block is carried from call to call,
// so blocks asked in increasing row order cost one pass over the mask in all.
class RowDecoder {
 public:
  explicit RowDecoder(const QuantTensor& q) : q_(q) {}
  // Rows [row_begin, row_end) as floats, (row_end - row_begin) x cols.
  void decode(int64_t row_begin, int64_t row_end, float* out);

 private:
  const QuantTensor& q_;
  int64_t row_ = 0, kept_before_row_ = 0;
};

// Rows [row_begin, row_end) of q's matrix as floats.
void dequantize_rows(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out);

// The float tensor a quantized tensor stands for (its logical shape); other
// tensors are returned as they are.
Tensor dequantize(const Tensor& t);

}  // namespace slmopt::quant
