// Cast and CastLike between every non-string type, and to/from strings.
#include "runtime/kernels/kernel_util.hpp"

namespace slmopt::runtime {
namespace {

void cast_op(OpContext& c) {
  auto to = dtype_from_onnx(static_cast<int>(c.attr_int("to", 0)));
  if (!to) c.fail("unsupported target type " + std::to_string(c.attr_int("to", 0)));
  c.output(0) = cast_tensor(c.input(0), *to);
}

void cast_like_op(OpContext& c) { c.output(0) = cast_tensor(c.input(0), c.input(1).dtype()); }

}  // namespace

void register_cast(KernelRegistry& r) {
  r.add("", "Cast", cast_op);
  r.add("", "CastLike", cast_like_op);
}

}  // namespace slmopt::runtime
