#include "runtime/op_context.hpp"

#include <algorithm>

#include "runtime/numeric.hpp"

namespace slmopt::runtime {

const Tensor& OpContext::input(size_t i) const {
  if (!has_input(i)) fail("input " + std::to_string(i) + " is required");
  return *inputs[i];
}

int64_t OpContext::attr_int(const std::string& name, int64_t fallback) const {
  const Attribute* a = attr(name);
  if (!a) return fallback;
  if (a->type != AttrType::Int) fail("attribute '" + name + "' must be an int");
  return a->i;
}

float OpContext::attr_float(const std::string& name, float fallback) const {
  const Attribute* a = attr(name);
  if (!a) return fallback;
  if (a->type == AttrType::Int) return static_cast<float>(a->i);
  if (a->type != AttrType::Float) fail("attribute '" + name + "' must be a float");
  return a->f;
}

std::string OpContext::attr_string(const std::string& name, const std::string& fallback) const {
  const Attribute* a = attr(name);
  if (!a) return fallback;
  if (a->type != AttrType::String) fail("attribute '" + name + "' must be a string");
  return a->s;
}

std::vector<int64_t> OpContext::attr_ints(const std::string& name, std::vector<int64_t> fallback) const {
  const Attribute* a = attr(name);
  if (!a) return fallback;
  if (a->type == AttrType::Int) return {a->i};
  if (a->type != AttrType::Ints) fail("attribute '" + name + "' must be a list of ints");
  return a->ints;
}

std::vector<float> OpContext::attr_floats(const std::string& name) const {
  const Attribute* a = attr(name);
  if (!a) return {};
  if (a->type != AttrType::Floats) fail("attribute '" + name + "' must be a list of floats");
  return a->floats;
}

// The session adds "node '<name>' (<Op>)" to every error a kernel throws.
void OpContext::fail(const std::string& message) const { throw_bad_input(message); }

std::vector<int64_t> int_values(const Tensor& t) {
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::I64) std::copy_n(t.data<int64_t>(), v.size(), v.begin());
  else if (t.dtype() == DType::I32) std::copy_n(t.data<int32_t>(), v.size(), v.begin());
  else throw_bad_input(std::string("expected an int32 or int64 tensor, got ") + dtype_name(t.dtype()));
  return v;
}

double scalar_value(const Tensor& t) {
  if (t.numel() < 1) throw_bad_input("expected a scalar, got an empty tensor");
  double out = 0;
  visit_numeric(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    out = to_double(t.data<T>()[0]);
  });
  return out;
}

}  // namespace slmopt::runtime
