// BatchNormalization (inference), LayerNormalization, RMSNormalization, InstanceNormalization.
#include <cmath>

#include "runtime/kernels/kernel_util.hpp"

namespace slmopt::runtime {
namespace {

void batch_norm_op(OpContext& c) {
  Tensor x = widen_to_float(c.input(0));
  if (x.rank() < 2) c.fail("input must have rank >= 2");
  Tensor scale = widen_to_float(c.input(1)), bias = widen_to_float(c.input(2));
  Tensor mean = widen_to_float(c.input(3)), var = widen_to_float(c.input(4));
  const int64_t channels = x.shape()[1];
  for (const Tensor* t : {&scale, &bias, &mean, &var})
    if (t->numel() != channels || t->dtype() != x.dtype()) c.fail("scale, B, mean and var need one value per channel");
  const double eps = c.attr_float("epsilon", 1e-5f);
  const int64_t inner = channels ? x.numel() / (x.shape()[0] * channels) : 0;
  // training_mode normalises with the batch's own statistics and also returns
  // the updated running mean and variance.
  const bool training = c.attr_int("training_mode", 0) != 0;
  const double momentum = c.attr_float("momentum", 0.9f);
  Tensor out(x.dtype(), x.shape());
  Tensor run_mean(x.dtype(), {channels}), run_var(x.dtype(), {channels});
  visit_float(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* po = out.mutable_data<T>();
    std::vector<double> use_mean(static_cast<size_t>(channels)), use_var(static_cast<size_t>(channels));
    for (int64_t ch = 0; ch < channels; ++ch) {
      use_mean[static_cast<size_t>(ch)] = mean.data<T>()[ch];
      use_var[static_cast<size_t>(ch)] = var.data<T>()[ch];
      if (!training) continue;
      double sum = 0, sq = 0;
      const double count = static_cast<double>(x.shape()[0] * inner);
      for (int64_t n = 0; n < x.shape()[0]; ++n)
        for (int64_t i = 0; i < inner; ++i) sum += px[(n * channels + ch) * inner + i];
      const double m = sum / count;
      for (int64_t n = 0; n < x.shape()[0]; ++n)
        for (int64_t i = 0; i < inner; ++i) {
          const double d = px[(n * channels + ch) * inner + i] - m;
          sq += d * d;
        }
      use_mean[static_cast<size_t>(ch)] = m;
      use_var[static_cast<size_t>(ch)] = sq / count;
      run_mean.mutable_data<T>()[ch] = static_cast<T>(mean.data<T>()[ch] * momentum + m * (1 - momentum));
      run_var.mutable_data<T>()[ch] = static_cast<T>(var.data<T>()[ch] * momentum + sq / count * (1 - momentum));
    }
    for (int64_t n = 0; n < x.shape()[0]; ++n)
      for (int64_t ch = 0; ch < channels; ++ch) {
        const double a = scale.data<T>()[ch] / std::sqrt(use_var[static_cast<size_t>(ch)] + eps);
        const double b = bias.data<T>()[ch] - a * use_mean[static_cast<size_t>(ch)];
        const int64_t base = (n * channels + ch) * inner;
        for (int64_t i = 0; i < inner; ++i) po[base + i] = static_cast<T>(a * px[base + i] + b);
      }
  });
  c.output(0) = narrow_from_float(out, c.input(0).dtype());
  if (training && c.outputs.size() > 1) c.output(1) = narrow_from_float(run_mean, c.input(0).dtype());
  if (training && c.outputs.size() > 2) c.output(2) = narrow_from_float(run_var, c.input(0).dtype());
}

// Normalises over the trailing dims from `axis`: (x - mean) / sqrt(var + eps) * scale + bias.
// RMS mode skips the mean. Optional outputs: mean and 1/stddev with the reduced dims kept as 1.
void normalize_trailing(OpContext& c, bool rms) {
  Tensor x = widen_to_float(c.input(0));
  const int64_t axis = normalize_axis(c, c.attr_int("axis", -1), x.rank());
  const double eps = c.attr_float("epsilon", 1e-5f);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < x.rank(); ++d) (d < axis ? outer : inner) *= x.shape()[static_cast<size_t>(d)];
  std::vector<int64_t> inner_shape(x.shape().begin() + axis, x.shape().end());
  Tensor scale = broadcast_to(c, widen_to_float(c.input(1)), inner_shape);
  Tensor bias = c.has_input(2) ? broadcast_to(c, widen_to_float(c.input(2)), inner_shape) : Tensor();
  Tensor out(x.dtype(), x.shape());
  std::vector<int64_t> stat_shape = x.shape();
  for (size_t d = static_cast<size_t>(axis); d < stat_shape.size(); ++d) stat_shape[d] = 1;
  const DType stash = c.node.find_attribute("stash_type") && c.attr_int("stash_type", 1) == 11 ? DType::F64 : DType::F32;
  Tensor mean_out(stash, stat_shape), inv_out(stash, stat_shape);
  visit_float(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* po = out.mutable_data<T>();
    for (int64_t o = 0; o < outer; ++o) {
      const T* row = px + o * inner;
      double mean = 0, sq = 0;
      if (!rms) {
        for (int64_t i = 0; i < inner; ++i) mean += row[i];
        mean /= static_cast<double>(inner);
      }
      for (int64_t i = 0; i < inner; ++i) sq += (row[i] - mean) * (row[i] - mean);
      const double inv = 1.0 / std::sqrt(sq / static_cast<double>(inner) + eps);
      for (int64_t i = 0; i < inner; ++i) {
        double v = (row[i] - mean) * inv * scale.data<T>()[i];
        if (c.has_input(2)) v += bias.data<T>()[i];
        po[o * inner + i] = static_cast<T>(v);
      }
      if (stash == DType::F64) {
        mean_out.mutable_data<double>()[o] = mean;
        inv_out.mutable_data<double>()[o] = inv;
      } else {
        mean_out.mutable_data<float>()[o] = static_cast<float>(mean);
        inv_out.mutable_data<float>()[o] = static_cast<float>(inv);
      }
    }
  });
  c.output(0) = narrow_from_float(out, c.input(0).dtype());
  if (!rms && c.outputs.size() > 1) c.output(1) = std::move(mean_out);
  if (!rms && c.outputs.size() > 2) c.output(2) = std::move(inv_out);
}

void layer_norm_op(OpContext& c) { normalize_trailing(c, false); }
void rms_norm_op(OpContext& c) { normalize_trailing(c, true); }

void instance_norm_op(OpContext& c) {
  Tensor x = widen_to_float(c.input(0));
  if (x.rank() < 3) c.fail("input must have rank >= 3");
  Tensor scale = widen_to_float(c.input(1)), bias = widen_to_float(c.input(2));
  const int64_t channels = x.shape()[1];
  if (scale.numel() != channels || bias.numel() != channels) c.fail("scale and B need one value per channel");
  const double eps = c.attr_float("epsilon", 1e-5f);
  const int64_t inner = x.numel() / std::max<int64_t>(1, x.shape()[0] * channels);
  Tensor out(x.dtype(), x.shape());
  visit_float(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (int64_t p = 0; p < x.shape()[0] * channels; ++p) {
      const T* row = x.data<T>() + p * inner;
      double mean = 0, sq = 0;
      for (int64_t i = 0; i < inner; ++i) mean += row[i];
      mean /= static_cast<double>(inner);
      for (int64_t i = 0; i < inner; ++i) sq += (row[i] - mean) * (row[i] - mean);
      const double inv = 1.0 / std::sqrt(sq / static_cast<double>(inner) + eps);
      const int64_t ch = p % channels;
      for (int64_t i = 0; i < inner; ++i)
        out.mutable_data<T>()[p * inner + i] =
            static_cast<T>((row[i] - mean) * inv * scale.data<T>()[ch] + bias.data<T>()[ch]);
    }
  });
  c.output(0) = narrow_from_float(out, c.input(0).dtype());
}

}  // namespace

void register_normalization(KernelRegistry& r) {
  r.add("", "BatchNormalization", batch_norm_op);
  r.add("", "LayerNormalization", layer_norm_op);
  r.add("", "RMSNormalization", rms_norm_op);
  r.add("", "InstanceNormalization", instance_norm_op);
}

}  // namespace slmopt::runtime
