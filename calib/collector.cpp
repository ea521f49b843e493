#include "calib/collector.hpp"

#include <algorithm>
#include <cmath>

#include "calib/gram.hpp"
#include "core/error.hpp"
#include "core/memory_limit.hpp"
#include "core/weight_uses.hpp"
#include "runtime/kernels/im2col.hpp"
#include "runtime/kernels/window.hpp"
#include "runtime/numeric.hpp"
#include "runtime/constants.hpp"
#include "runtime/session.hpp"

namespace slmopt::calib {
namespace {

int64_t product(const std::vector<int64_t>& v, size_t from = 0) {
  int64_t p = 1;
  for (size_t i = from; i < v.size(); ++i) p *= v[i];
  return p;
}

}  // namespace

StatsCollector::StatsCollector(const Model& model, const CollectOptions& options) : options_(options) {
  const Graph& g = model.graph;
  for (const auto& [weight, use] : find_weight_uses(g)) {
    if (use.activation.empty()) continue;
    const Tensor& w = g.find_initializer(weight)->tensor;
    const Node* node = nullptr;
    const std::string &node_name = use.node, &op = use.op;  // clang 14 lambdas cannot capture bindings
    for_each_graph(g, [&](const Graph& body, int) {
      for (const Node& n : body.nodes)
        if (!node && n.name == node_name && n.op_type == op) node = &n;
    });
    if (!node || w.rank() < 1) continue;
    Reader r{"", node, use.op == "Conv", use.activation_transposed, {}, 1};
    int64_t cols = 0;
    if (r.conv) {
      if (w.rank() < 3) continue;
      r.kernel.assign(w.shape().begin() + 2, w.shape().end());
      const Attribute* group = node->find_attribute("group");
      r.groups = group ? group->i : 1;
      if (r.groups < 1) continue;
      cols = product(w.shape(), 1);
      r.key = "conv " + use.node;
    } else {
      if (w.rank() != 2) continue;
      cols = use.input_axis_first ? w.shape()[0] : w.shape()[1];
      r.key = use.activation + (r.transposed ? " (transposed)" : "");
    }
    stats_.weight_inputs[weight] = r.key;
    if (!stats_.inputs.count(r.key)) {
      InputStats s;
      s.kind = r.conv ? "conv" : "matmul";
      s.groups = r.groups;
      s.cols = cols;
      const auto n = static_cast<size_t>(r.groups * cols);
      const bool gram = options_.gram && cols <= options_.max_gram_cols;
      const uint64_t bytes = n * (3 * sizeof(double) + sizeof(float)) + (gram ? n * static_cast<uint64_t>(cols) * sizeof(double) : 0);
      charged_.add(bytes, "the calibration statistics of '" + r.key + "'");
      s.sum_sq.assign(n, 0.0);
      s.sum_abs.assign(n, 0.0);
      s.sum.assign(n, 0.0);
      s.abs_max.assign(n, 0.0f);
      if (gram) s.gram.assign(n * static_cast<size_t>(cols), 0.0);
      stats_.inputs[r.key] = std::move(s);
      readers_.emplace(use.activation, r);
    }
  }
}

void StatsCollector::Charge::add(uint64_t more, const std::string& what) {
  check_memory_request(more, what);
  note_allocated(more);
  bytes += more;
}

StatsCollector::Charge::~Charge() { note_freed(bytes); }

void StatsCollector::add_rows(InputStats& s, int64_t group, const float* x, int64_t rows) {
  const int64_t n = s.cols;
  double* sq = s.sum_sq.data() + group * n;
  double* ab = s.sum_abs.data() + group * n;
  double* sm = s.sum.data() + group * n;
  float* mx = s.abs_max.data() + group * n;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[r * n + i];
      sq[i] += static_cast<double>(v) * v;
      ab[i] += std::fabs(static_cast<double>(v));
      sm[i] += v;
      mx[i] = std::max(mx[i], std::fabs(v));
    }
  if (s.has_gram()) gram_accumulate(x, rows, n, s.gram.data() + group * n * n);
  if (group == 0) s.count += rows;
}

void StatsCollector::observe_matmul(const Reader& r, const Tensor& x) {
  InputStats& s = stats_.inputs[r.key];
  const int64_t k = s.cols;
  if (x.rank() < 1 || k == 0 || x.numel() % k != 0) return;  // the runtime rejects such a run anyway
  if (!r.transposed) {
    if (x.shape().back() != k) return;
    add_rows(s, 0, x.data<float>(), x.numel() / k);
    return;
  }
  if (x.rank() != 2 || x.shape()[0] != k) return;
  const int64_t m = x.shape()[1];
  std::vector<float> rows(static_cast<size_t>(m * k));
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < m; ++j) rows[static_cast<size_t>(j * k + i)] = x.data<float>()[i * m + j];
  add_rows(s, 0, rows.data(), m);
}

void StatsCollector::observe_conv(const Reader& r, const Tensor& x) {
  InputStats& s = stats_.inputs[r.key];
  const size_t nd = r.kernel.size();
  if (x.rank() != static_cast<int64_t>(nd + 2) || x.shape()[1] % r.groups != 0) return;
  const int64_t batch = x.shape()[0], channels = x.shape()[1], cg = channels / r.groups;
  const int64_t k_size = product(r.kernel);
  if (cg * k_size != s.cols) return;
  const std::vector<int64_t> spatial(x.shape().begin() + 2, x.shape().end());
  const runtime::OpContext ctx{*r.node, 0, {}, {}};
  const runtime::Window win = runtime::compute_window(ctx, spatial, r.kernel);
  const int64_t in_size = product(spatial), out_size = product(win.out);
  std::vector<float> col(static_cast<size_t>(s.cols * out_size)), rows(col.size());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t g = 0; g < r.groups; ++g) {
      for (int64_t ci = 0; ci < cg; ++ci) {
        const float* plane = x.data<float>() + (b * channels + g * cg + ci) * in_size;
        for (int64_t kp = 0; kp < k_size; ++kp) {
          float* row = col.data() + (ci * k_size + kp) * out_size;
          if (nd == 2) runtime::im2col_row_2d(plane, spatial, win, kp, row);
          else runtime::im2col_row_reference(plane, spatial, win, kp, row);
        }
      }
      // One activation vector (patch) per output position.
      for (int64_t i = 0; i < s.cols; ++i)
        for (int64_t p = 0; p < out_size; ++p) rows[static_cast<size_t>(p * s.cols + i)] = col[static_cast<size_t>(i * out_size + p)];
      add_rows(s, g, rows.data(), out_size);
    }
}

void StatsCollector::observe(const std::string& name, const Tensor& value) {
  if (value.is_quantized() || !is_float(value.dtype()) || value.numel() == 0) return;
  const Tensor x = value.dtype() == DType::F32 ? value : runtime::widen_to_float(value);
  if (x.dtype() != DType::F32) return;
  auto [it, fresh] = stats_.ranges.try_emplace(name, ValueRange{INFINITY, -INFINITY});
  (void)fresh;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float v = x.data<float>()[i];
    if (std::isnan(v)) continue;
    it->second.min = std::min(it->second.min, v);
    it->second.max = std::max(it->second.max, v);
  }
  auto [first, last] = readers_.equal_range(name);
  for (auto r = first; r != last; ++r) {
    if (r->second.conv) observe_conv(r->second, x);
    else observe_matmul(r->second, x);
  }
}

void StatsCollector::observe_histogram(const std::string& name, const Tensor& value) {
  if (options_.histogram_bins <= 0 || value.is_quantized() || !is_float(value.dtype()) || value.numel() == 0) return;
  auto range = stats_.ranges.find(name);
  if (range == stats_.ranges.end() || !(range->second.min <= range->second.max)) return;
  const Tensor x = value.dtype() == DType::F32 ? value : runtime::widen_to_float(value);
  ValueHistogram& h = stats_.histograms[name];
  if (h.counts.empty()) {
    h.lo = range->second.min;
    h.hi = range->second.max;
    const uint64_t bytes = static_cast<uint64_t>(options_.histogram_bins) * sizeof(h.counts[0]);
    charged_.add(bytes, "the histogram of '" + name + "' (--histogram-bins sets its size)");
    h.counts.assign(static_cast<size_t>(options_.histogram_bins), 0);
  }
  const int64_t bins = options_.histogram_bins;
  const double width = h.hi > h.lo ? (static_cast<double>(h.hi) - h.lo) / static_cast<double>(bins) : 1.0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float v = x.data<float>()[i];
    if (std::isnan(v)) continue;
    // Clamped before the cast: an infinite value (an attention mask's -inf)
    // or an infinite range gives inf or NaN here, which no integer holds.
    const double at = (static_cast<double>(v) - h.lo) / width;
    const int64_t bin = at >= static_cast<double>(bins) ? bins - 1 : at > 0 ? static_cast<int64_t>(at) : 0;
    ++h.counts[static_cast<size_t>(bin)];
  }
}

CalibStats StatsCollector::finish() {
  for (auto& [key, s] : stats_.inputs)
    if (s.has_gram())
      for (int64_t g = 0; g < s.groups; ++g) gram_symmetrize(s.cols, s.gram.data() + g * s.cols * s.cols);
  return std::move(stats_);
}

CalibStats collect_stats(const Model& model, const std::vector<Sample>& samples, const CollectOptions& options,
                         const SampleProgress& progress) {
  if (samples.empty()) throw_usage("calibration needs at least one sample");
  // The weight passes find weights in this form; their statistics must be keyed the same way.
  Model normalized = model;
  runtime::constants_to_initializers(normalized);
  StatsCollector collector(normalized, options);
  runtime::Session session(normalized);
  session.set_observer([&](const Node&, const std::string& name, const Tensor& value) { collector.observe(name, value); });
  for (size_t i = 0; i < samples.size(); ++i) {
    if (progress) progress(i, samples.size());
    for (const auto& [name, tensor] : samples[i]) collector.observe(name, tensor);
    session.run(samples[i]);
    collector.end_sample();
  }
  if (options.histogram_bins > 0) {
    // Histograms need each value's final range: a second pass.
    session.set_observer([&](const Node&, const std::string& name, const Tensor& value) { collector.observe_histogram(name, value); });
    for (const auto& sample : samples) {
      for (const auto& [name, tensor] : sample) collector.observe_histogram(name, tensor);
      session.run(sample);
    }
  }
  if (progress) progress(samples.size(), samples.size());
  return collector.finish();
}

}  // namespace slmopt::calib
