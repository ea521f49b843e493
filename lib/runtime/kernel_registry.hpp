// One table from (domain, op type) to kernel. Each kernel family registers its
// ops in its own file (kernels/*.cpp) through one function listed in
// kernel_registry.cpp, so adding an op touches one file and one line.
#pragma once

#include <map>
#include <string>
#include <utility>

#include "runtime/op_context.hpp"

namespace slmopt::runtime {

using KernelFn = void (*)(OpContext&);

// Whether a kernel reads quantized weights (QuantTensor inputs) itself. Other
// kernels get those inputs dequantized by the session first.
enum class QuantInputs { Dequantize, Consume };

struct KernelEntry {
  KernelFn fn = nullptr;
  QuantInputs quant = QuantInputs::Dequantize;
};

class KernelRegistry {
 public:
  static const KernelRegistry& instance();
  void add(const std::string& domain, const std::string& op, KernelFn fn,
           QuantInputs quant = QuantInputs::Dequantize);
  KernelFn find(const std::string& domain, const std::string& op) const;
  const KernelEntry* entry(const std::string& domain, const std::string& op) const;

 private:
  std::map<std::pair<std::string, std::string>, KernelEntry> kernels_;
};

}  // namespace slmopt::runtime
