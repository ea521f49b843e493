// The bitshift trellis behind the tcq scheme (scheme_trellis.cpp), exposed
// for tests and for decoders written elsewhere (formats/blob/slmblob.h).
#pragma once

#include <cstdint>
#include <vector>

namespace slmopt::quant {

// Codes a state spans: the weight's own code and the ones before it.
int trellis_window(int bits);

// The value a state of the trellis stands for (times its row's scale):
// nearly Gaussian, mean 0, deviation 147.8, in [-510, 510].
int32_t trellis_value(uint32_t state);

// The Viterbi search: the states of n weights x (state i's low `bits` bits
// being weight i's code) that minimise sum importance[i] (x[i] - d value)^2,
// starting from any state (memory < 0) or from one whose bits above the
// first code are `memory`. Importance may be null (all 1).
std::vector<uint32_t> trellis_search(const float* x, const float* importance, int64_t n, float d, int bits,
                                     int64_t memory);

}  // namespace slmopt::quant
