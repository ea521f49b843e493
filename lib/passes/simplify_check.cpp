// Running the model before and after simplify on the same inputs.
#include <cmath>
#include <cstring>

#include "core/error.hpp"
#include "passes/simplify.hpp"
#include "runtime/session.hpp"

namespace slmopt::passes {
namespace {

double value_at(const Tensor& t, int64_t i) {
  return t.dtype() == DType::F64 ? t.data<double>()[i] : static_cast<double>(t.data<float>()[i]);
}

void compare(const Tensor& before, const Tensor& after, OutputDifference& d) {
  const bool same_layout = before.dtype() == after.dtype() && before.shape() == after.shape();
  const bool identical = same_layout && (before.nbytes() == 0 || std::memcmp(before.bytes(), after.bytes(), before.nbytes()) == 0);
  d.identical = d.identical && identical;
  if (identical) return;
  if (!same_layout || (before.dtype() != DType::F32 && before.dtype() != DType::F64)) {
    d.max_abs = d.rel_l2 = INFINITY;
    return;
  }
  double diff2 = 0, ref2 = 0;
  for (int64_t i = 0; i < before.numel(); ++i) {
    const double r = value_at(before, i), c = value_at(after, i);
    d.max_abs = std::max(d.max_abs, std::abs(c - r));
    diff2 += (c - r) * (c - r);
    ref2 += r * r;
  }
  d.rel_l2 = std::max(d.rel_l2, ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2));
}

}  // namespace

std::vector<OutputDifference> compare_runs(const Model& before, const Model& after,
                                           const std::vector<std::map<std::string, Tensor>>& samples) {
  const runtime::Session reference(before), candidate(after);
  std::vector<OutputDifference> diffs;
  for (const auto& v : before.graph.outputs) diffs.push_back({v.name});
  for (const auto& sample : samples) {
    const auto want = reference.run(sample);
    std::map<std::string, Tensor> got;
    try {
      got = candidate.run(sample);
    } catch (const Error& e) {
      throw_internal(std::string("the simplified model fails where the original runs: ") + e.what());
    }
    for (auto& d : diffs) {
      auto w = want.find(d.name);
      auto g = got.find(d.name);
      if (w == want.end() || g == got.end())
        throw_internal("simplify lost the output '" + d.name + "'");
      compare(w->second, g->second, d);
    }
  }
  return diffs;
}

}  // namespace slmopt::passes
