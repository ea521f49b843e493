// slmopt_quant_digest: quantizes fixed matrices with every preset and every
// algorithm that needs no model (round-to-nearest, scale search, search
// weighted by importance, GPTQ on a fixed Gram matrix) and prints a 64-bit
// FNV-1a digest of the bytes per case. Built with gcc and with clang (see
// scripts/test.sh) the outputs must be identical: the quantizer's bytes may
// not depend on the compiler, its FMA contraction or the thread count.
//
// The inputs come from integer arithmetic only, so they are the same
// everywhere before any floating-point code runs.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "quant/gptq.hpp"
#include "quant/quantize_weight.hpp"
#include "quant/spec.hpp"

using namespace slmopt;

namespace {

// xorshift64*: integers only.
struct Rng {
  uint64_t s;
  uint32_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return static_cast<uint32_t>((s * 0x2545F4914F6CDD1DULL) >> 32);
  }
  // Sum of four uniforms, centred: a bell-shaped value, exact in float.
  float bell() {
    int64_t v = 0;
    for (int i = 0; i < 4; ++i) v += next() >> 16;
    return static_cast<float>(v - 2 * 65535) / 65536.0f;
  }
};

uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

uint64_t digest(const Tensor& t) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const auto& part : t.quant()->parts) h = fnv1a(h, part.bytes.data(), part.bytes.size());
  return h;
}

}  // namespace

int main() {
  const int64_t rows = 96, cols = 200, samples = 400;  // cols not a multiple of any group size
  Rng rng{0x9E3779B97F4A7C15ULL};
  std::vector<float> w(static_cast<size_t>(rows * cols)), x(static_cast<size_t>(samples * cols));
  for (auto& v : w) v = rng.bell() * 0.05f;
  for (int64_t i = 0; i < cols; i += 37) w[static_cast<size_t>(i)] = 0.9f;  // outliers
  // Correlated inputs: x = shared factors + noise, channel scales 1..8.
  for (int64_t s = 0; s < samples; ++s) {
    const float f0 = rng.bell(), f1 = rng.bell();
    for (int64_t c = 0; c < cols; ++c)
      x[static_cast<size_t>(s * cols + c)] =
          (f0 + (c % 2 ? f1 : -f1) + 0.25f * rng.bell()) * static_cast<float>(1 + c % 8);
  }
  std::vector<double> gram(static_cast<size_t>(cols * cols), 0.0);
  std::vector<float> importance(static_cast<size_t>(cols), 0.0f);
  for (int64_t s = 0; s < samples; ++s)
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j)
        gram[static_cast<size_t>(i * cols + j)] +=
            static_cast<double>(x[static_cast<size_t>(s * cols + i)]) * x[static_cast<size_t>(s * cols + j)];
  for (int64_t i = 0; i < cols; ++i)
    importance[static_cast<size_t>(i)] = static_cast<float>(gram[static_cast<size_t>(i * cols + i)] / samples);
  const Tensor weight = Tensor::from_values<float>(DType::F32, {rows, cols}, w);

  uint64_t all = 0xcbf29ce484222325ULL;
  for (const char* spec : {"q8", "q6", "q5", "q4", "q4n", "q3", "q2", "t2", "b1", "int4-g32-asym", "lut3-g16", "nf4-g64",
                           "int8-ch", "int4-tensor", "tcq4-ch", "ec4-ch"}) {
    const quant::QuantSpec s = quant::parse_spec(spec);
    quant::QuantizeOptions rtn, mse, weighted;
    mse.search = weighted.search = true;
    weighted.importance = importance.data();
    std::vector<std::pair<std::string, Tensor>> cases = {
        {"rtn", quant::quantize_weight(weight, quant::InputAxis::Rest, *s.scheme, s.params, rtn)},
        {"mse", quant::quantize_weight(weight, quant::InputAxis::Rest, *s.scheme, s.params, mse)},
        {"mse+importance", quant::quantize_weight(weight, quant::InputAxis::Rest, *s.scheme, s.params, weighted)}};
    if (s.scheme->nearest)
      cases.emplace_back("gptq", quant::quantize_weight_gptq(weight, quant::InputAxis::Rest, *s.scheme, s.params, weighted,
                                                             gram.data(), 1, {}));
    for (const auto& [algorithm, t] : cases) {
      const uint64_t h = digest(t);
      all = fnv1a(all, &h, sizeof h);
      std::printf("%-16s %-16s %016llx\n", spec, algorithm.c_str(), static_cast<unsigned long long>(h));
    }
  }
  std::printf("all %016llx\n", static_cast<unsigned long long>(all));
  return 0;
}
