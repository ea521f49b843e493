// A dense row-major tensor: dtype, int64 shape and shared bytes (owned or mapped).
// Copies share bytes; writing through mutable_bytes() first detaches (copy on write),
// so a tensor that views a mapped file can be edited without touching the file.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/buffer.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"

namespace slmopt {

struct QuantTensor;

class Tensor {
 public:
  Tensor() = default;
  // Owned, zero-filled. Throws Error(BadInput) on negative dims or size overflow.
  Tensor(DType dtype, std::vector<int64_t> shape);
  // Wraps existing bytes; buffer->size() must equal numel * element size. When the
  // bytes are not aligned to the element size they are copied to an owned buffer.
  static Tensor from_buffer(DType dtype, std::vector<int64_t> shape,
                            std::shared_ptr<Buffer> buffer);
  static Tensor from_strings(std::vector<int64_t> shape, std::vector<std::string> values);
  // A quantized weight: logically f32 of q->shape; its bytes are the scheme's
  // parts, so typed access throws until it is dequantized (lib/quant).
  static Tensor quantized(std::shared_ptr<const QuantTensor> q);
  template <class T>
  static Tensor from_values(DType dtype, std::vector<int64_t> shape, const std::vector<T>& values);

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t numel() const { return numel_; }
  // Bytes of element data (stored bytes for a quantized tensor); 0 for strings.
  size_t nbytes() const;
  bool is_quantized() const { return quant_ != nullptr; }
  const QuantTensor* quant() const { return quant_.get(); }
  const std::shared_ptr<const QuantTensor>& quant_ptr() const { return quant_; }
  bool is_mapped() const { return buffer_ && buffer_->is_mapped(); }

  const uint8_t* bytes() const { return buffer_ ? buffer_->data() : nullptr; }
  uint8_t* mutable_bytes();
  std::span<const std::string> strings() const { return strings_; }

  template <class T>
  const T* data() const {
    check_access(sizeof(T));
    return reinterpret_cast<const T*>(bytes());
  }
  template <class T>
  T* mutable_data() {
    check_access(sizeof(T));
    return reinterpret_cast<T*>(mutable_bytes());
  }

  // The same bytes (shared, not copied) under another shape with the same element count.
  Tensor with_shape(std::vector<int64_t> shape) const;

  // Same dtype, shape and bytes (strings compared by value).
  bool bit_equal(const Tensor& other) const;

 private:
  void check_access(size_t element_size) const;
  DType dtype_ = DType::F32;
  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  std::shared_ptr<Buffer> buffer_;
  std::vector<std::string> strings_;
  std::shared_ptr<const QuantTensor> quant_;
};

template <class T>
Tensor Tensor::from_values(DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  Tensor t(dtype, std::move(shape));
  if (static_cast<int64_t>(values.size()) != t.numel() ||
      sizeof(T) != static_cast<size_t>(dtype_size(dtype)))
    throw_internal("Tensor::from_values: value count or type size does not match");
  std::copy(values.begin(), values.end(), t.mutable_data<T>());
  return t;
}

std::string shape_to_string(std::span<const int64_t> shape);

}  // namespace slmopt
