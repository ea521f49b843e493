#include "runtime/kernels/kernel_util.hpp"

#include <cstring>

namespace slmopt::runtime {

int64_t normalize_axis(const OpContext& ctx, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= (rank == 0 ? 1 : rank))
    ctx.fail("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> strides_of(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
  return s;
}

std::vector<int64_t> broadcast_shape(const OpContext& ctx, const std::vector<int64_t>& a,
                                     const std::vector<int64_t>& b) {
  const size_t rank = std::max(a.size(), b.size());
  std::vector<int64_t> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      ctx.fail("shapes " + shape_to_string(a) + " and " + shape_to_string(b) + " cannot be broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::vector<int64_t> broadcast_strides(const std::vector<int64_t>& in, const std::vector<int64_t>& out) {
  std::vector<int64_t> s(out.size(), 0);
  auto own = strides_of(in);
  const size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) s[off + i] = in[i] == 1 ? 0 : own[i];
  return s;
}

std::vector<double> doubles_of(const Tensor& t) {
  Tensor d = cast_tensor(t, DType::F64);
  return {d.data<double>(), d.data<double>() + d.numel()};
}

Tensor broadcast_to(const OpContext& ctx, const Tensor& in, const std::vector<int64_t>& out) {
  auto shape = broadcast_shape(ctx, in.shape(), out);
  if (shape != out) ctx.fail("cannot broadcast " + shape_to_string(in.shape()) + " to " + shape_to_string(out));
  auto sa = broadcast_strides(in.shape(), out);
  if (in.dtype() == DType::String) {
    std::vector<std::string> v;
    for_each_broadcast2(out, sa, sa, [&](int64_t, int64_t a, int64_t) { v.push_back(in.strings()[static_cast<size_t>(a)]); });
    return Tensor::from_strings(out, std::move(v));
  }
  Tensor r(in.dtype(), out);
  const auto es = static_cast<size_t>(dtype_size(in.dtype()));
  const uint8_t* src = in.bytes();
  uint8_t* dst = r.mutable_bytes();
  const int64_t step = inner_step(sa), inner = out.empty() ? 1 : out.back();
  for_each_broadcast_row<1>(out, {sa}, [&](int64_t o, const std::array<int64_t, 1>& at) {
    uint8_t* row = dst + static_cast<size_t>(o) * es;
    const uint8_t* from = src + static_cast<size_t>(at[0]) * es;
    if (step != 0) {
      std::memcpy(row, from, static_cast<size_t>(inner) * es);
    } else {  // one value along the row: copy it, then double the filled part
      const size_t bytes = static_cast<size_t>(inner) * es;
      std::memcpy(row, from, es);
      for (size_t filled = es; filled < bytes; filled += std::min(filled, bytes - filled))
        std::memcpy(row + filled, row, std::min(filled, bytes - filled));
    }
  });
  return r;
}

}  // namespace slmopt::runtime
