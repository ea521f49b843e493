// The scheme families; scheme_registry.cpp lists them in one table.
#pragma once

#include "quant/scheme.hpp"

namespace slmopt::quant {

extern const Scheme kIntScheme;
extern const Scheme kTernaryScheme;
extern const Scheme kBinaryScheme;
extern const Scheme kNormalFloatScheme;
extern const Scheme kFittedTableScheme;

}  // namespace slmopt::quant
