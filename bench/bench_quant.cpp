// Quantization error and speed of our schemes on the reproducible matrices of
// ../shared/quant-reference.md, beside llama.cpp's figures at the same or a
// higher bit rate. Without calibration data (no importance), as llama.cpp's.
//
//   slmopt_bench_quant DIR [SPEC ...]
//   slmopt_bench_quant --env     (DIR from SLMOPT_QUANT_REF; exit 77 = skipped
//                                 when unset, unless SLMOPT_REQUIRE_TESTDATA=1)
//
// DIR holds gauss.npy and t3.npy (scripts/fetch-testdata.sh writes them).
// Extra SPECs are measured too (no comparison), to explore new configurations.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "calib/npy.hpp"
#include "core/error.hpp"
#include "core/quant_tensor.hpp"
#include "llama_reference.hpp"
#include "quant/quantize_weight.hpp"
#include "quant/scheme_families.hpp"
#include "quant/sparse.hpp"
#include "quant/spec.hpp"

using namespace slmopt;

namespace {

struct Measured {
  double bpw = 0, rel = 0, max_abs = 0, weights_per_s = 0;
};

Measured measure(const Tensor& w, const quant::QuantSpec& spec, bool search) {
  quant::QuantizeOptions options;
  options.search = search;
  const auto start = std::chrono::steady_clock::now();
  // The matrices are quantized row by row along their last axis, as llama.cpp does.
  Tensor q = quant::quantize_weight(w, quant::InputAxis::Rest, *spec.scheme, spec.params, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Tensor back = quant::dequantize(q);
  const float* a = w.data<float>();
  const float* b = back.data<float>();
  double num = 0, den = 0, max_abs = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(a[i]) * a[i];
    max_abs = std::max(max_abs, std::fabs(d));
  }
  return {q.quant()->bits_per_weight(), std::sqrt(num / den), max_abs, static_cast<double>(w.numel()) / seconds};
}

// Decoding speed of a quantized matrix (what a quantized model's
// matrix-vector product mostly costs): the scheme's decoder against its
// family's plain reference decoder, the baseline run beside it.
void decode_speed(const Tensor& w, const char* spec_text) {
  const auto spec = quant::parse_spec(spec_text);
  const Tensor q = quant::quantize_weight(w, quant::InputAxis::Rest, *spec.scheme, spec.params, {});
  const QuantTensor& qt = *q.quant();
  std::vector<float> out(static_cast<size_t>(w.numel()));
  auto rate = [&](auto&& decode) {
    decode();  // warm
    const auto start = std::chrono::steady_clock::now();
    constexpr int kRounds = 5;
    for (int i = 0; i < kRounds; ++i) decode();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return kRounds * static_cast<double>(w.numel()) / seconds;
  };
  const quant::Decoder reference = quant::reference_decoder(*spec.scheme);
  const double fast = rate([&] { spec.scheme->dequantize(qt, 0, qt.rows, out.data()); });
  const double plain = rate([&] { reference(qt, 0, qt.rows, out.data()); });
  std::printf("decode %-18s %8.1f Mweights/s, reference %8.1f: %.2fx\n", quant::format_spec(spec).c_str(), fast / 1e6,
              plain / 1e6, fast / plain);
}

// A half-pruned matrix stored sparse, decoded as the matmul kernel does (a
// block of 16 rows at a time): in place from the compact codes, against the
// baseline of decoding the same tensor expanded to one code per weight (what
// a session held before it read sparse tensors in place), and the RAM each
// form of the codes takes.
void sparse_decode_speed(const Tensor& w, const char* spec_text) {
  const auto spec = quant::parse_spec(spec_text);
  Tensor pruned = w;
  float* v = pruned.mutable_data<float>();
  for (int64_t i = 0; i < pruned.numel(); ++i)
    if (std::fabs(v[i]) < 0.6745f) v[i] = 0.0f;  // |N(0,1)| median: half the weights
  int64_t kept = 0;
  const Tensor dense = quant::quantize_weight(pruned, quant::InputAxis::Rest, *spec.scheme, spec.params, {});
  const QuantTensor& qt = *dense.quant();
  const Tensor sparse = quant::with_sparse_mask(dense, quant::nonzero_mask(v, pruned.numel(), kept));
  const QuantTensor& compact = *sparse.quant();
  const auto expanded = quant::expand_sparse(compact);
  std::vector<float> out(static_cast<size_t>(16 * qt.cols));
  auto rate = [&](const QuantTensor& q) {
    const auto start = std::chrono::steady_clock::now();
    constexpr int kRounds = 3;
    for (int i = 0; i < kRounds; ++i) {
      quant::RowDecoder decoder(q);
      for (int64_t r0 = 0; r0 < q.rows; r0 += 16) decoder.decode(r0, std::min(q.rows, r0 + 16), out.data());
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return kRounds * static_cast<double>(w.numel()) / seconds;
  };
  const double in_place = rate(compact), baseline = rate(*expanded);
  std::printf("sparse %-18s %8.1f Mweights/s in place, expanded %8.1f: %.2fx; codes %zu bytes, expanded %zu (%.2fx)\n",
              quant::format_spec(spec).c_str(), in_place / 1e6, baseline / 1e6, in_place / baseline,
              compact.part("codes")->bytes.size() + compact.parts.back().bytes.size(),
              expanded->part("codes")->bytes.size() + expanded->parts.back().bytes.size(),
              static_cast<double>(compact.part("codes")->bytes.size() + compact.parts.back().bytes.size()) /
                  static_cast<double>(expanded->part("codes")->bytes.size() + expanded->parts.back().bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: slmopt_bench_quant DIR [SPEC ...]\n");
    return 2;
  }
  try {
    std::string dir = argv[1];
    if (dir == "--env") {
      const char* env = std::getenv("SLMOPT_QUANT_REF");
      if (!env || !*env) {
        const char* require = std::getenv("SLMOPT_REQUIRE_TESTDATA");
        std::fprintf(stderr, "SLMOPT_QUANT_REF is not set (scripts/fetch-testdata.sh writes the matrices)\n");
        return require && std::string(require) == "1" ? 2 : 77;
      }
      dir = env;
    }
    const Tensor gauss = calib::read_npy(dir + "/gauss.npy"), t3 = calib::read_npy(dir + "/t3.npy");
    std::printf("%-8s %-18s %7s | %-20s | %-20s | %s\n", "llama", "ours", "bpw", "gauss rel (llama)", "t3 rel (llama)",
                "Mweights/s");
    int worse = 0;
    for (const auto& f : bench::kLlamaFigures) {
      const auto spec = quant::parse_spec(f.ours);
      const Measured g = measure(gauss, spec, true), t = measure(t3, spec, true);
      const bool ok = g.bpw <= f.bpw && g.rel < f.gauss_rel && t.rel < f.t3_rel;
      worse += ok ? 0 : 1;
      std::printf("%-8s %-18s %7.4f | %.5f (%.5f) %s | %.5f (%.5f) %s | %.2f  max abs %.3f/%.3f (%.3f/%.3f)\n", f.type,
                  quant::format_spec(spec).c_str(), g.bpw, g.rel, f.gauss_rel, g.rel < f.gauss_rel ? "ok" : "WORSE", t.rel,
                  f.t3_rel, t.rel < f.t3_rel ? "ok" : "WORSE", g.weights_per_s / 1e6, g.max_abs, t.max_abs, f.gauss_max,
                  f.t3_max);
    }
    for (int i = 2; i < argc; ++i) {
      const auto spec = quant::parse_spec(argv[i]);
      for (bool search : {false, true}) {
        const Measured g = measure(gauss, spec, search), t = measure(t3, spec, search);
        std::printf("%-8s %-18s %7.4f | %.5f %s | %.5f | %.2f\n", search ? "search" : "rtn",
                    quant::format_spec(spec).c_str(), g.bpw, g.rel, "        ", t.rel, g.weights_per_s / 1e6);
      }
    }
    for (const char* spec : {"q4", "q8", "int4-g32", "q4n", "nf4", "ec4-ch"}) decode_speed(gauss, spec);
    for (const char* spec : {"q4", "q8"}) sparse_decode_speed(gauss, spec);
    std::printf("%d of %zu llama.cpp rates not beaten\n", worse, std::size(bench::kLlamaFigures));
    return worse == 0 ? 0 : 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "slmopt_bench_quant: %s\n", e.what());
    return 2;
  }
}
