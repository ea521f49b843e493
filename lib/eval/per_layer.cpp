#include "eval/per_layer.hpp"

#include <algorithm>

#include "eval/metrics.hpp"

namespace slmopt::eval {

void PerLayerComparison::add_sample(runtime::Session& reference, runtime::Session& candidate,
                                    const std::map<std::string, Tensor>& sample) {
  // The reference's intermediates are kept for this sample only (copies share
  // their buffers, so this holds each value once).
  std::map<std::string, Tensor> ref_values;
  reference.set_observer([&](const Node&, const std::string& name, const Tensor& t) {
    if (t.dtype() != DType::String) ref_values[name] = t;
  });
  reference.run(sample);
  reference.set_observer(nullptr);
  size_t order = 0;
  candidate.set_observer([&](const Node& node, const std::string& name, const Tensor& t) {
    ++order;
    auto it = ref_values.find(name);
    if (it == ref_values.end() || it->second.shape() != t.shape() || t.dtype() == DType::String) return;
    SampleMetrics m = compare_tensors(it->second, t);
    Accumulator& a = acc_[name];
    a.op = node.op_type;
    a.rel_l2 += m["rel_l2"];
    a.cosine += m["cosine"];
    a.order = order;
    ++a.samples;
  });
  candidate.run(sample);
  candidate.set_observer(nullptr);
}

std::vector<LayerError> PerLayerComparison::layers() const {
  std::vector<std::pair<size_t, LayerError>> rows;
  for (const auto& [name, a] : acc_)
    rows.push_back({a.order, {name, a.op, a.rel_l2 / a.samples, a.cosine / a.samples, a.samples}});
  std::sort(rows.begin(), rows.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<LayerError> out;
  for (auto& r : rows) out.push_back(std::move(r.second));
  return out;
}

std::optional<size_t> PerLayerComparison::first_jump(double factor, double floor) const {
  auto rows = layers();
  double worst_before = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].rel_l2 > floor && rows[i].rel_l2 >= factor * worst_before) return i;
    worst_before = std::max(worst_before, rows[i].rel_l2);
  }
  return std::nullopt;
}

}  // namespace slmopt::eval
