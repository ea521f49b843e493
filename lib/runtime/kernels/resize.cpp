// Resize (opset 10-19) and Upsample: nearest, linear and cubic interpolation,
// every coordinate transformation mode, applied separably one axis at a time
// (which is what n-linear and n-cubic interpolation are).
#include <cmath>

#include "runtime/kernels/kernel_util.hpp"

namespace slmopt::runtime {
namespace {

struct ResizeSpec {
  std::string mode = "nearest", coord = "half_pixel", nearest = "round_prefer_floor";
  double cubic_a = -0.75, extrapolation = 0;
  bool exclude_outside = false;
};

// Source coordinate of output index y along one axis.
double source_coordinate(const ResizeSpec& s, double y, double scale, int64_t in, int64_t out, double roi_start,
                         double roi_end) {
  if (s.coord == "half_pixel") return (y + 0.5) / scale - 0.5;
  if (s.coord == "half_pixel_symmetric") {
    const double adjustment = static_cast<double>(out) / (scale * static_cast<double>(in));
    const double offset = static_cast<double>(in) / 2 * (1 - adjustment);
    return offset + (y + 0.5) / scale - 0.5;
  }
  if (s.coord == "pytorch_half_pixel") return out > 1 ? (y + 0.5) / scale - 0.5 : 0;
  // ONNX measures the resized length as in * scale, unrounded.
  if (s.coord == "align_corners") {
    const double resized = scale * static_cast<double>(in);
    return out == 1 ? 0 : y * static_cast<double>(in - 1) / (resized - 1);
  }
  if (s.coord == "tf_half_pixel_for_nn") return (y + 0.5) / scale;
  if (s.coord == "asymmetric") return y / scale;
  if (s.coord == "tf_crop_and_resize")
    return out > 1 ? roi_start * static_cast<double>(in - 1) + y * (roi_end - roi_start) * static_cast<double>(in - 1) / static_cast<double>(out - 1)
                   : 0.5 * (roi_start + roi_end) * static_cast<double>(in - 1);
  throw_bad_input("unknown coordinate_transformation_mode '" + s.coord + "'");
}

int64_t nearest_index(const ResizeSpec& s, double x) {
  const double f = std::floor(x);
  if (s.nearest == "floor") return static_cast<int64_t>(f);
  if (s.nearest == "ceil") return static_cast<int64_t>(std::ceil(x));
  if (s.nearest == "round_prefer_ceil") return static_cast<int64_t>(x - f == 0.5 ? f + 1 : std::round(x));
  return static_cast<int64_t>(x - f == 0.5 ? f : std::round(x));  // round_prefer_floor
}

double cubic_weight(double t, double a) {
  t = std::abs(t);
  if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
  return 0;
}

// Resizes axis `axis` of x (f64) to `out` elements.
Tensor resize_axis(const ResizeSpec& s, const Tensor& x, size_t axis, int64_t out, double scale, double roi_start,
                   double roi_end) {
  const int64_t in = x.shape()[axis];
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < x.shape().size(); ++d)
    if (d < axis) outer *= x.shape()[d];
    else if (d > axis) inner *= x.shape()[d];
  std::vector<int64_t> shape = x.shape();
  shape[axis] = out;
  Tensor r(DType::F64, shape);
  const double* px = x.data<double>();
  double* pr = r.mutable_data<double>();
  const bool crop = s.coord == "tf_crop_and_resize";
  for (int64_t y = 0; y < out; ++y) {
    const double xs = source_coordinate(s, static_cast<double>(y), scale, in, out, roi_start, roi_end);
    std::vector<std::pair<int64_t, double>> taps;  // (source index, weight)
    bool extrapolate = crop && (xs < 0 || xs > static_cast<double>(in - 1));
    if (s.mode == "nearest") {
      taps.emplace_back(std::clamp<int64_t>(nearest_index(s, xs), 0, in - 1), 1.0);
    } else if (s.mode == "linear") {
      const double xc = std::clamp(xs, 0.0, static_cast<double>(in - 1));
      const int64_t i0 = static_cast<int64_t>(std::floor(xc));
      const int64_t i1 = std::min(i0 + 1, in - 1);
      const double t = xc - static_cast<double>(i0);
      taps = {{i0, 1 - t}, {i1, t}};
    } else if (s.mode == "cubic") {
      const int64_t base = static_cast<int64_t>(std::floor(xs));
      const double t = xs - static_cast<double>(base);
      double total = 0;
      for (int64_t k = -1; k <= 2; ++k) {
        const int64_t idx = base + k;
        double w = cubic_weight(t - static_cast<double>(k), s.cubic_a);
        if (idx < 0 || idx >= in) {
          if (s.exclude_outside) w = 0;
        }
        taps.emplace_back(std::clamp<int64_t>(idx, 0, in - 1), w);
        total += w;
      }
      if (s.exclude_outside && total != 0)
        for (auto& tap : taps) tap.second /= total;
    } else {
      throw_bad_input("unknown mode '" + s.mode + "'");
    }
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        double v = 0;
        if (extrapolate) v = s.extrapolation;
        else
          for (const auto& [idx, w] : taps) v += w * px[(o * in + idx) * inner + i];
        pr[(o * out + y) * inner + i] = v;
      }
  }
  return r;
}

void resize_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const int64_t rank = x.rank();
  ResizeSpec s;
  s.mode = c.attr_string("mode", "nearest");
  s.coord = c.attr_string("coordinate_transformation_mode", c.opset >= 11 || c.node.op_type != "Resize" ? "half_pixel" : "asymmetric");
  s.nearest = c.attr_string("nearest_mode", "round_prefer_floor");
  s.cubic_a = c.attr_float("cubic_coeff_a", -0.75f);
  s.exclude_outside = c.attr_int("exclude_outside", 0) != 0;
  s.extrapolation = c.attr_float("extrapolation_value", 0.0f);
  if (c.attr_int("antialias", 0) != 0) c.fail("antialias is not supported");
  std::vector<double> scales;
  std::vector<int64_t> sizes;
  std::vector<double> roi;
  if (c.node.op_type == "Upsample" || c.opset < 11) {
    // Upsample and Resize-10: scales is the second input, no ROI; asymmetric + floor rounding.
    if (c.node.op_type == "Upsample" || c.opset < 11) {
      s.coord = "asymmetric";
      s.nearest = "floor";
    }
    scales = doubles_of(c.input(1));
  } else {
    if (c.has_input(1) && c.input(1).numel() > 0) roi = doubles_of(c.input(1));
    if (c.has_input(2) && c.input(2).numel() > 0) scales = doubles_of(c.input(2));
    if (c.has_input(3) && c.input(3).numel() > 0) sizes = int_values(c.input(3));
  }
  std::vector<int64_t> axes = c.attr_ints("axes");
  if (axes.empty())
    for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
  for (auto& a : axes) a = normalize_axis(c, a, rank);
  const size_t n = axes.size();
  std::vector<double> full_scale(static_cast<size_t>(rank), 1.0), roi_start(static_cast<size_t>(rank), 0.0),
      roi_end(static_cast<size_t>(rank), 1.0);
  std::vector<int64_t> out_shape = x.shape();
  if (!roi.empty()) {
    if (roi.size() != 2 * n) c.fail("roi must have two entries per resized axis");
    for (size_t i = 0; i < n; ++i) {
      roi_start[static_cast<size_t>(axes[i])] = roi[i];
      roi_end[static_cast<size_t>(axes[i])] = roi[i + n];
    }
  }
  if (!sizes.empty()) {
    if (sizes.size() != n) c.fail("sizes must have one entry per resized axis");
    const std::string policy = c.attr_string("keep_aspect_ratio_policy", "stretch");
    std::vector<double> ratio(n);
    for (size_t i = 0; i < n; ++i) ratio[i] = static_cast<double>(sizes[i]) / static_cast<double>(x.shape()[static_cast<size_t>(axes[i])]);
    if (policy != "stretch") {
      double r = policy == "not_larger" ? *std::min_element(ratio.begin(), ratio.end()) : *std::max_element(ratio.begin(), ratio.end());
      for (size_t i = 0; i < n; ++i) {
        ratio[i] = r;
        sizes[i] = static_cast<int64_t>(std::round(r * static_cast<double>(x.shape()[static_cast<size_t>(axes[i])])));
      }
    }
    for (size_t i = 0; i < n; ++i) {
      out_shape[static_cast<size_t>(axes[i])] = sizes[i];
      full_scale[static_cast<size_t>(axes[i])] = ratio[i];
    }
  } else {
    if (scales.size() != n) c.fail("scales must have one entry per resized axis");
    for (size_t i = 0; i < n; ++i) {
      if (scales[i] <= 0) c.fail("scales must be positive");
      const auto a = static_cast<size_t>(axes[i]);
      full_scale[a] = scales[i];
      out_shape[a] = static_cast<int64_t>(std::floor(static_cast<double>(x.shape()[a]) * scales[i]));
    }
  }
  Tensor cur = cast_tensor(x, DType::F64);
  for (size_t d = 0; d < static_cast<size_t>(rank); ++d) {
    const bool identity = out_shape[d] == x.shape()[d] && full_scale[d] == 1.0 && s.coord != "tf_crop_and_resize";
    if (identity) continue;
    cur = resize_axis(s, cur, d, out_shape[d], full_scale[d], roi_start[d], roi_end[d]);
  }
  c.output(0) = cast_tensor(cur, x.dtype());
}

}  // namespace

void register_resize(KernelRegistry& r) {
  r.add("", "Resize", resize_op);
  r.add("", "Upsample", resize_op);
}

}  // namespace slmopt::runtime
