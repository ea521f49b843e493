#include "core/tensor.hpp"

#include <cstring>

#include "core/checked.hpp"
#include "core/quant_tensor.hpp"

namespace slmopt {

Tensor::Tensor(DType dtype, std::vector<int64_t> shape) : dtype_(dtype), shape_(std::move(shape)) {
  numel_ = checked_numel(shape_);
  if (dtype_ == DType::String) {
    strings_.resize(static_cast<size_t>(numel_));
  } else {
    buffer_ = Buffer::allocate(
        static_cast<size_t>(checked_mul(numel_, dtype_size(dtype_), "tensor byte size")));
  }
}

Tensor Tensor::from_buffer(DType dtype, std::vector<int64_t> shape, std::shared_ptr<Buffer> buffer) {
  if (dtype == DType::String) throw_internal("string tensors cannot wrap a byte buffer");
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.numel_ = checked_numel(t.shape_);
  int64_t expected = checked_mul(t.numel_, dtype_size(dtype), "tensor byte size");
  if (static_cast<uint64_t>(expected) != buffer->size())
    throw_bad_input("tensor of shape " + shape_to_string(t.shape_) + " and type " +
                    dtype_name(dtype) + " needs " + std::to_string(expected) + " bytes, got " +
                    std::to_string(buffer->size()));
  auto address = reinterpret_cast<uintptr_t>(buffer->data());
  if (address % static_cast<uintptr_t>(dtype_size(dtype)) != 0) {
    auto copy = Buffer::allocate(buffer->size());
    std::memcpy(copy->mutable_data(), buffer->data(), buffer->size());
    buffer = std::move(copy);
  }
  t.buffer_ = std::move(buffer);
  return t;
}

Tensor Tensor::from_strings(std::vector<int64_t> shape, std::vector<std::string> values) {
  Tensor t;
  t.dtype_ = DType::String;
  t.shape_ = std::move(shape);
  t.numel_ = checked_numel(t.shape_);
  if (static_cast<int64_t>(values.size()) != t.numel_)
    throw_bad_input("string tensor of shape " + shape_to_string(t.shape_) + " has " +
                    std::to_string(values.size()) + " values");
  t.strings_ = std::move(values);
  return t;
}

Tensor Tensor::quantized(std::shared_ptr<const QuantTensor> q) {
  Tensor t;
  t.dtype_ = DType::F32;
  t.shape_ = q->shape;
  t.numel_ = checked_numel(t.shape_);
  if (t.numel_ != checked_mul(q->rows, q->cols, "quantized tensor size"))
    throw_internal("quantized tensor: rows x cols does not match its shape");
  t.quant_ = std::move(q);
  return t;
}

size_t Tensor::nbytes() const {
  if (quant_) {
    size_t n = 0;
    for (const auto& p : quant_->parts) n += p.bytes.size();
    return n;
  }
  return buffer_ ? buffer_->size() : 0;
}

const QuantPart* QuantTensor::part(const std::string& part_name) const {
  for (const auto& p : parts)
    if (p.name == part_name) return &p;
  return nullptr;
}

int64_t QuantTensor::storage_bits() const {
  int64_t bits = 0;
  for (const auto& p : parts) bits += p.count * p.bits;
  return bits;
}

double QuantTensor::bits_per_weight() const {
  const int64_t n = rows * cols;
  return n > 0 ? static_cast<double>(storage_bits()) / static_cast<double>(n) : 0.0;
}

uint8_t* Tensor::mutable_bytes() {
  if (quant_) throw_internal("a quantized tensor has no element bytes; dequantize it first");
  if (!buffer_) return nullptr;
  if (!buffer_->is_owned() || buffer_.use_count() > 1) {
    auto copy = Buffer::allocate(buffer_->size());
    if (buffer_->size()) std::memcpy(copy->mutable_data(), buffer_->data(), buffer_->size());
    buffer_ = std::move(copy);
  }
  return buffer_->mutable_data();
}

void Tensor::check_access(size_t element_size) const {
  if (quant_) throw_internal("typed access of a quantized tensor; dequantize it first");
  if (dtype_ == DType::String || element_size != static_cast<size_t>(dtype_size(dtype_)))
    throw_internal(std::string("typed access of a ") + dtype_name(dtype_) +
                   " tensor with a wrong element size");
}

Tensor Tensor::with_shape(std::vector<int64_t> shape) const {
  Tensor t = *this;
  t.numel_ = checked_numel(shape);
  if (t.numel_ != numel_)
    throw_bad_input("cannot view " + shape_to_string(shape_) + " as " + shape_to_string(shape));
  t.shape_ = std::move(shape);
  return t;
}

bool Tensor::bit_equal(const Tensor& other) const {
  if (dtype_ != other.dtype_ || shape_ != other.shape_) return false;
  if (dtype_ == DType::String) return strings_ == other.strings_;
  if (quant_ || other.quant_) return quant_ && other.quant_ && *quant_ == *other.quant_;
  if (nbytes() != other.nbytes()) return false;
  return nbytes() == 0 || std::memcmp(bytes(), other.bytes(), nbytes()) == 0;
}

std::string shape_to_string(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace slmopt
