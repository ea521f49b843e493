#include "runtime/kernel_registry.hpp"

#include "runtime/kernels/families.hpp"

namespace slmopt::runtime {

const KernelRegistry& KernelRegistry::instance() {
  static const KernelRegistry registry = [] {
    KernelRegistry r;
    register_elementwise_unary(r);
    register_elementwise_binary(r);
    register_matmul(r);
    register_conv(r);
    register_pool(r);
    register_normalization(r);
    register_softmax(r);
    register_reduce(r);
    register_shape_ops(r);
    register_data_movement(r);
    register_cast(r);
    register_control_flow(r);
    register_loss(r);
    register_quantization(r);
    register_qlinear(r);
    register_resize(r);
    register_indexing(r);
    register_recurrent(r);
    register_attention(r);
    register_contrib_attention(r);
    return r;
  }();
  return registry;
}

void KernelRegistry::add(const std::string& domain, const std::string& op, KernelFn fn, QuantInputs quant) {
  kernels_[{domain == "ai.onnx" ? "" : domain, op}] = KernelEntry{fn, quant};
}

const KernelEntry* KernelRegistry::entry(const std::string& domain, const std::string& op) const {
  auto it = kernels_.find({domain == "ai.onnx" ? "" : domain, op});
  return it == kernels_.end() ? nullptr : &it->second;
}

KernelFn KernelRegistry::find(const std::string& domain, const std::string& op) const {
  const KernelEntry* e = entry(domain, op);
  return e ? e->fn : nullptr;
}

}  // namespace slmopt::runtime
