// Registration functions of the kernel families, one per file in kernels/.
#pragma once

namespace slmopt::runtime {

class KernelRegistry;

void register_elementwise_unary(KernelRegistry& r);
void register_elementwise_binary(KernelRegistry& r);
void register_matmul(KernelRegistry& r);
void register_conv(KernelRegistry& r);
void register_pool(KernelRegistry& r);
void register_normalization(KernelRegistry& r);
void register_softmax(KernelRegistry& r);
void register_reduce(KernelRegistry& r);
void register_shape_ops(KernelRegistry& r);
void register_data_movement(KernelRegistry& r);
void register_cast(KernelRegistry& r);
void register_control_flow(KernelRegistry& r);
void register_loss(KernelRegistry& r);
void register_quantization(KernelRegistry& r);
void register_qlinear(KernelRegistry& r);
void register_resize(KernelRegistry& r);
void register_indexing(KernelRegistry& r);
void register_recurrent(KernelRegistry& r);
void register_attention(KernelRegistry& r);
void register_contrib_attention(KernelRegistry& r);

}  // namespace slmopt::runtime
