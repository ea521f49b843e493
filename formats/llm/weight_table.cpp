#include "llm/weight_table.hpp"

#include "core/error.hpp"
#include "core/half.hpp"

namespace slmopt::llm {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Tensor widened(const Tensor& t) {
  if (t.dtype() == DType::F32) return t;
  Tensor out(DType::F32, t.shape());
  float* dst = out.mutable_data<float>();
  const auto* src = t.data<uint16_t>();
  for (int64_t i = 0; i < t.numel(); ++i)
    dst[i] = t.dtype() == DType::BF16 ? bf16_to_float(src[i]) : half_to_float(src[i]);
  return out;
}

}  // namespace

WeightTable::WeightTable(std::vector<NamedTensor> tensors, std::string file) : file_(std::move(file)) {
  for (auto& t : tensors) tensors_.emplace(t.name, std::move(t.tensor));
}

Tensor WeightTable::take(const std::string& name, const std::vector<int64_t>& shape) {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw_bad_input("missing tensor '" + name + "'", file_);
  const Tensor& t = it->second;
  if (t.shape() != shape)
    throw_bad_input("tensor '" + name + "' has shape " + shape_text(t.shape()) + ", the config implies " +
                        shape_text(shape),
                    file_);
  if (t.dtype() != DType::F32 && t.dtype() != DType::F16 && t.dtype() != DType::BF16)
    throw_bad_input("tensor '" + name + "' is " + dtype_name(t.dtype()) + " (expected f32, f16 or bf16)", file_);
  // Matrices stay as stored (memory-mapped, bf16/f16 included): kernels and the
  // quantizer widen them one at a time. Vectors (norms, biases) are widened now.
  Tensor out = t.rank() >= 2 ? t : widened(t);
  tensors_.erase(it);
  return out;
}

void WeightTable::expect_all_taken() const {
  if (tensors_.empty()) return;
  std::string names;
  int listed = 0;
  for (const auto& [name, t] : tensors_) {
    if (listed++ == 3) {
      names += ", ...";
      break;
    }
    names += (names.empty() ? "'" : ", '") + name + "'";
  }
  throw_bad_input(std::to_string(tensors_.size()) + " tensor(s) the architecture does not use: " + names, file_);
}

}  // namespace slmopt::llm
