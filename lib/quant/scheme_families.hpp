// The scheme families; scheme_registry.cpp lists them in one table.
#pragma once

#include "quant/scheme.hpp"

namespace slmopt::quant {

extern const Scheme kIntScheme;
extern const Scheme kTernaryScheme;
extern const Scheme kBinaryScheme;
extern const Scheme kNormalFloatScheme;
extern const Scheme kFittedTableScheme;
extern const Scheme kFloatScheme;  // f16/f32 values: sparse storage of float weights

}  // namespace slmopt::quant
