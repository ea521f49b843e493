// Ops that change only shapes or make constants: Reshape, Flatten, Squeeze,
// Unsqueeze, Shape, Size, Expand, ConstantOfShape, Range, Identity, Dropout, Constant.
#include <algorithm>
#include <cmath>

#include "runtime/kernels/kernel_util.hpp"

namespace slmopt::runtime {
namespace {

// Same bytes, new shape (no copy).
Tensor reshaped(const OpContext&, const Tensor& t, std::vector<int64_t> shape) { return t.with_shape(std::move(shape)); }

void reshape_op(OpContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> shape;
  if (c.opset > 0 && c.opset < 5) shape = c.attr_ints("shape");
  else shape = int_values(c.input(1));
  const bool allowzero = c.attr_int("allowzero", 0) != 0;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allowzero) {
      if (i >= x.shape().size()) c.fail("0 in shape refers to a missing input dim");
      shape[i] = x.shape()[i];
    }
    if (shape[i] == -1) {
      if (infer >= 0) c.fail("more than one -1 in shape");
      infer = static_cast<int64_t>(i);
    } else if (shape[i] < 0) {
      c.fail("invalid dimension " + std::to_string(shape[i]));
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known != 0) c.fail("cannot infer -1 in shape " + shape_to_string(shape));
    shape[static_cast<size_t>(infer)] = x.numel() / known;
  }
  c.output(0) = reshaped(c, x, shape);
}

void flatten_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const int64_t rank = x.rank();
  int64_t axis = c.attr_int("axis", 1);
  if (axis < -rank || axis > rank) c.fail("axis out of range");
  if (axis < 0) axis += rank;
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.shape()[static_cast<size_t>(d)];
  c.output(0) = reshaped(c, x, {outer, outer ? x.numel() / outer : 0});
}

std::vector<int64_t> axes_of(OpContext& c) {
  if (c.opset >= 13) return c.has_input(1) ? int_values(c.input(1)) : std::vector<int64_t>{};
  return c.attr_ints("axes");
}

void squeeze_op(OpContext& c) {
  const Tensor& x = c.input(0);
  auto axes = axes_of(c);
  std::vector<bool> drop(x.shape().size(), false);
  if (axes.empty())
    for (size_t d = 0; d < drop.size(); ++d) drop[d] = x.shape()[d] == 1;
  for (int64_t a : axes) {
    const auto d = static_cast<size_t>(normalize_axis(c, a, x.rank()));
    if (x.shape()[d] != 1) c.fail("cannot squeeze dim " + std::to_string(a) + " of size " + std::to_string(x.shape()[d]));
    drop[d] = true;
  }
  std::vector<int64_t> shape;
  for (size_t d = 0; d < drop.size(); ++d)
    if (!drop[d]) shape.push_back(x.shape()[d]);
  c.output(0) = reshaped(c, x, shape);
}

void unsqueeze_op(OpContext& c) {
  const Tensor& x = c.input(0);
  auto axes = axes_of(c);
  const int64_t out_rank = x.rank() + static_cast<int64_t>(axes.size());
  std::vector<bool> inserted(static_cast<size_t>(out_rank), false);
  for (int64_t a : axes) {
    const auto d = static_cast<size_t>(normalize_axis(c, a, out_rank));
    if (inserted[d]) c.fail("axis repeated");
    inserted[d] = true;
  }
  std::vector<int64_t> shape;
  size_t src = 0;
  for (size_t d = 0; d < inserted.size(); ++d) shape.push_back(inserted[d] ? 1 : x.shape()[src++]);
  c.output(0) = reshaped(c, x, shape);
}

void shape_op(OpContext& c) {
  const auto& s = c.input(0).shape();
  const int64_t rank = static_cast<int64_t>(s.size());
  int64_t start = c.attr_int("start", 0), end = c.attr_int("end", rank);
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, 0, rank);
  std::vector<int64_t> v(s.begin() + start, s.begin() + std::max(start, end));
  c.output(0) = Tensor::from_values<int64_t>(DType::I64, {static_cast<int64_t>(v.size())}, v);
}

void size_op(OpContext& c) { c.output(0) = Tensor::from_values<int64_t>(DType::I64, {}, {c.input(0).numel()}); }

void expand_op(OpContext& c) {
  const Tensor& x = c.input(0);
  auto target = int_values(c.input(1));
  c.output(0) = broadcast_to(c, x, broadcast_shape(c, x.shape(), target));
}

void constant_of_shape_op(OpContext& c) {
  auto shape = int_values(c.input(0));
  const Attribute* value = c.attr("value");
  if (!value) {
    c.output(0) = Tensor(DType::F32, shape);
    return;
  }
  if (value->tensors.empty() || value->tensors[0].tensor.numel() != 1) c.fail("value must hold one element");
  const Tensor& v = value->tensors[0].tensor;
  c.output(0) = broadcast_to(c, reshaped(c, v, {}), shape);
}

void range_op(OpContext& c) {
  const Tensor& start = c.input(0);
  const double s = scalar_value(start), limit = scalar_value(c.input(1)), delta = scalar_value(c.input(2));
  if (delta == 0) c.fail("delta must not be zero");
  const int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((limit - s) / delta)));
  if (n > (int64_t{1} << 31)) c.fail("range of " + std::to_string(n) + " elements is too large");
  Tensor out(start.dtype(), {n});
  visit_numeric(start.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T ts = start.data<T>()[0], td = static_cast<T>(delta);
    T* p = out.mutable_data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(ts + static_cast<T>(i) * td);
  });
  c.output(0) = std::move(out);
}

void identity_op(OpContext& c) { c.output(0) = c.input(0); }

void dropout_op(OpContext& c) {
  // Inference: the input passes through; the mask, when asked for, is all true.
  c.output(0) = c.input(0);
  if (c.wants_output(1)) {
    Tensor mask(DType::Bool, c.input(0).shape());
    for (int64_t i = 0; i < mask.numel(); ++i) mask.mutable_data<bool>()[i] = true;
    c.output(1) = std::move(mask);
  }
}

void constant_op(OpContext& c) {
  if (c.node.attributes.size() != 1) c.fail("needs exactly one value attribute");
  const Attribute& a = c.node.attributes[0];
  if (a.name == "value") c.output(0) = a.tensors.at(0).tensor;
  else if (a.name == "value_float") c.output(0) = Tensor::from_values<float>(DType::F32, {}, {a.f});
  else if (a.name == "value_floats")
    c.output(0) = Tensor::from_values<float>(DType::F32, {static_cast<int64_t>(a.floats.size())}, a.floats);
  else if (a.name == "value_int") c.output(0) = Tensor::from_values<int64_t>(DType::I64, {}, {a.i});
  else if (a.name == "value_ints")
    c.output(0) = Tensor::from_values<int64_t>(DType::I64, {static_cast<int64_t>(a.ints.size())}, a.ints);
  else if (a.name == "value_string") c.output(0) = Tensor::from_strings({}, {a.s});
  else if (a.name == "value_strings")
    c.output(0) = Tensor::from_strings({static_cast<int64_t>(a.strings.size())}, a.strings);
  else c.fail("attribute '" + a.name + "' is not supported");
}

}  // namespace

void register_shape_ops(KernelRegistry& r) {
  const std::pair<const char*, KernelFn> ops[] = {
      {"Reshape", reshape_op},   {"Flatten", flatten_op}, {"Squeeze", squeeze_op},
      {"Unsqueeze", unsqueeze_op}, {"Shape", shape_op},   {"Size", size_op},
      {"Expand", expand_op},     {"ConstantOfShape", constant_of_shape_op}, {"Range", range_op},
      {"Identity", identity_op}, {"Dropout", dropout_op}, {"Constant", constant_op},
  };
  for (const auto& [name, fn] : ops) r.add("", name, fn);
}

}  // namespace slmopt::runtime
