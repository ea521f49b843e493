// A scheme and its params in one short, printable string, used by rules,
// the --bits shorthand and every report:
//
//   <scheme><bits>[-g<N> | -ch | -tensor][-asym][-k<B>[x<S>]][-f32]
//
//   int4-g32-asym-k6   4-bit codes, groups of 32 with a minimum, group scales
//                      quantized to 6 bits in super-blocks of 256 (4.5 bpw)
//   int8-ch            8-bit symmetric, one f16 scale per output channel
//   ternary-g64, binary-g128, nf4-g64, lut3-g32
//
// A preset name (q8, q6, q5, q4, q4n, q3, q2, t2, b1) stands for a tuned spec.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "quant/scheme.hpp"

namespace slmopt::quant {

struct QuantSpec {
  const Scheme* scheme = nullptr;
  QuantParams params;
};

// Parses and validates; Error(BadInput) names the part that is wrong.
QuantSpec parse_spec(std::string_view text);
std::string format_spec(const QuantSpec& spec);

struct Preset {
  const char* name;
  const char* spec;
  const char* summary;
};
const std::vector<Preset>& presets();

// The spec a bare bit width stands for (8 -> q8, 4 -> q4, 2 -> q2, ...).
QuantSpec spec_for_bits(int bits);

}  // namespace slmopt::quant
