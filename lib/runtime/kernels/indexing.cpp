// Index-driven ops: GatherND, ScatterElements (and its old name Scatter),
// OneHot, EyeLike, Compress, NonZero.
#include <cstring>

#include "runtime/kernels/kernel_util.hpp"

namespace slmopt::runtime {
namespace {

int64_t checked_index(const OpContext& c, int64_t v, int64_t dim) {
  if (v < -dim || v >= dim) c.fail("index " + std::to_string(v) + " is out of range for a dim of " + std::to_string(dim));
  return v < 0 ? v + dim : v;
}

void copy_element(const Tensor& src, int64_t from, Tensor& dst, int64_t to) {
  const auto es = static_cast<size_t>(dtype_size(src.dtype()));
  std::memcpy(dst.mutable_bytes() + static_cast<size_t>(to) * es, src.bytes() + static_cast<size_t>(from) * es, es);
}

void gather_nd_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const Tensor& ind = c.input(1);
  const auto idx = int_values(ind);
  const int64_t b = c.attr_int("batch_dims", 0);
  if (ind.rank() < 1 || x.rank() < 1 || x.dtype() == DType::String) c.fail("unsupported operand shapes or type");
  const int64_t k = ind.shape().back();
  if (b + k > x.rank()) c.fail("index depth exceeds the data rank");
  std::vector<int64_t> shape(ind.shape().begin(), ind.shape().end() - 1);
  shape.insert(shape.end(), x.shape().begin() + b + k, x.shape().end());
  int64_t slice = 1, batch = 1;
  for (int64_t d = b + k; d < x.rank(); ++d) slice *= x.shape()[static_cast<size_t>(d)];
  for (int64_t d = 0; d < b; ++d) batch *= x.shape()[static_cast<size_t>(d)];
  const auto strides = strides_of(x.shape());
  const int64_t per_batch_x = b ? strides[static_cast<size_t>(b - 1)] : x.numel();
  const int64_t n_tuples = k ? static_cast<int64_t>(idx.size()) / k : 0;
  const int64_t tuples_per_batch = n_tuples / std::max<int64_t>(batch, 1);
  Tensor out(x.dtype(), shape);
  int64_t o = 0;
  for (int64_t t = 0; t < n_tuples; ++t) {
    int64_t off = (t / std::max<int64_t>(tuples_per_batch, 1)) * per_batch_x;
    for (int64_t j = 0; j < k; ++j)
      off += checked_index(c, idx[static_cast<size_t>(t * k + j)], x.shape()[static_cast<size_t>(b + j)]) *
             strides[static_cast<size_t>(b + j)];
    for (int64_t e = 0; e < slice; ++e) copy_element(x, off + e, out, o++);
  }
  c.output(0) = std::move(out);
}

void scatter_elements_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const Tensor& ind = c.input(1);
  const Tensor& upd = c.input(2);
  const auto idx = int_values(ind);
  const int64_t axis = normalize_axis(c, c.attr_int("axis", 0), x.rank());
  const std::string reduction = c.attr_string("reduction", "none");
  if (ind.shape() != upd.shape() || ind.rank() != x.rank()) c.fail("indices and updates must share a shape of the data's rank");
  Tensor out = widen_to_float(x);
  out.mutable_bytes();  // detach from the input
  Tensor u = widen_to_float(upd);
  const auto xs = strides_of(x.shape()), is = strides_of(ind.shape());
  visit_numeric(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* po = out.mutable_data<T>();
    const T* pu = u.data<T>();
    for (int64_t i = 0; i < ind.numel(); ++i) {
      int64_t off = 0;
      for (size_t d = 0; d < xs.size(); ++d) {
        int64_t k = (i / is[d]) % ind.shape()[d];
        if (static_cast<int64_t>(d) == axis) k = checked_index(c, idx[static_cast<size_t>(i)], x.shape()[d]);
        off += k * xs[d];
      }
      T& dst = po[off];
      if constexpr (std::is_same_v<T, bool>) dst = pu[i];
      else if (reduction == "add") dst = static_cast<T>(dst + pu[i]);
      else if (reduction == "mul") dst = static_cast<T>(dst * pu[i]);
      else if (reduction == "max") dst = std::max(dst, pu[i]);
      else if (reduction == "min") dst = std::min(dst, pu[i]);
      else dst = pu[i];
    }
  });
  c.output(0) = narrow_from_float(out, x.dtype());
}

void one_hot_op(OpContext& c) {
  const auto indices = doubles_of(c.input(0));
  const int64_t depth = static_cast<int64_t>(scalar_value(c.input(1)));
  const Tensor& values = c.input(2);
  if (depth <= 0 || values.numel() != 2) c.fail("depth must be positive and values hold [off, on]");
  const int64_t rank = c.input(0).rank() + 1;
  const int64_t axis = normalize_axis(c, c.attr_int("axis", -1), rank);
  std::vector<int64_t> shape = c.input(0).shape();
  shape.insert(shape.begin() + axis, depth);
  int64_t inner = 1;
  for (size_t d = static_cast<size_t>(axis); d < c.input(0).shape().size(); ++d) inner *= c.input(0).shape()[d];
  Tensor out(values.dtype(), shape);
  for (int64_t i = 0; i < out.numel(); ++i) {
    const int64_t in = i % inner, k = (i / inner) % depth, o = i / (inner * depth);
    int64_t v = static_cast<int64_t>(indices[static_cast<size_t>(o * inner + in)]);
    if (v < 0) v += depth;
    copy_element(values, v == k ? 1 : 0, out, i);
  }
  c.output(0) = std::move(out);
}

void eye_like_op(OpContext& c) {
  const Tensor& x = c.input(0);
  if (x.rank() != 2) c.fail("input must be 2-D");
  DType dtype = x.dtype();
  if (const Attribute* a = c.attr("dtype")) {
    auto d = dtype_from_onnx(static_cast<int>(a->i));
    if (!d) c.fail("unsupported dtype");
    dtype = *d;
  }
  const int64_t k = c.attr_int("k", 0);
  Tensor ones = cast_tensor(Tensor::from_values<double>(DType::F64, {2}, {0.0, 1.0}), dtype);
  Tensor out(dtype, x.shape());
  for (int64_t r = 0; r < x.shape()[0]; ++r) {
    const int64_t col = r + k;
    if (col >= 0 && col < x.shape()[1]) copy_element(ones, 1, out, r * x.shape()[1] + col);
  }
  c.output(0) = std::move(out);
}

void compress_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const Tensor& cond = c.input(1);
  if (cond.dtype() != DType::Bool || cond.rank() != 1) c.fail("condition must be a 1-D bool tensor");
  const Attribute* axis_attr = c.attr("axis");
  Tensor src = axis_attr ? x : x.with_shape({x.numel()});
  const int64_t axis = axis_attr ? normalize_axis(c, axis_attr->i, x.rank()) : 0;
  const int64_t dim = src.shape()[static_cast<size_t>(axis)];
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < std::min(dim, cond.numel()); ++i)
    if (cond.data<bool>()[i]) keep.push_back(i);
  std::vector<int64_t> shape = src.shape();
  shape[static_cast<size_t>(axis)] = static_cast<int64_t>(keep.size());
  int64_t inner = 1;
  for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d) inner *= shape[d];
  Tensor out(x.dtype(), shape);
  const int64_t kept = static_cast<int64_t>(keep.size());
  for (int64_t i = 0; i < out.numel(); ++i) {
    const int64_t in = i % inner, k = (i / inner) % std::max<int64_t>(kept, 1), o = i / (inner * std::max<int64_t>(kept, 1));
    copy_element(src, (o * dim + keep[static_cast<size_t>(k)]) * inner + in, out, i);
  }
  c.output(0) = std::move(out);
}

void non_zero_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const auto v = doubles_of(x);
  std::vector<int64_t> hits;
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] != 0) hits.push_back(static_cast<int64_t>(i));
  const int64_t rank = x.rank(), n = static_cast<int64_t>(hits.size());
  Tensor out(DType::I64, {rank, n});
  const auto strides = strides_of(x.shape());
  for (int64_t j = 0; j < n; ++j)
    for (int64_t d = 0; d < rank; ++d)
      out.mutable_data<int64_t>()[d * n + j] = (hits[static_cast<size_t>(j)] / strides[static_cast<size_t>(d)]) % x.shape()[static_cast<size_t>(d)];
  c.output(0) = std::move(out);
}

}  // namespace

void register_indexing(KernelRegistry& r) {
  r.add("", "GatherND", gather_nd_op);
  r.add("", "ScatterElements", scatter_elements_op);
  r.add("", "Scatter", scatter_elements_op);
  r.add("", "OneHot", one_hot_op);
  r.add("", "EyeLike", eye_like_op);
  r.add("", "Compress", compress_op);
  r.add("", "NonZero", non_zero_op);
}

}  // namespace slmopt::runtime
