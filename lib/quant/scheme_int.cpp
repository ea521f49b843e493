// Uniform integer codes of 1-8 bits: per tensor, per output channel or per
// group along the input dimension; symmetric or with a minimum; scales f16 or
// f32, optionally quantized themselves inside super-blocks (two-level, as
// llama.cpp's k-quants: 4-bit codes cost ~4.5 bits per weight, not 5).
#include <algorithm>
#include <cmath>

#include "core/parallel_errors.hpp"
#include "quant/bitpack.hpp"
#include "quant/group_geometry.hpp"
#include "quant/scale_store.hpp"
#include "quant/scheme.hpp"
#include "quant/scheme_families.hpp"
#include "quant/uniform_fit.hpp"

namespace slmopt::quant {
namespace {

void validate_int(const QuantParams& p) {
  if (p.bits < 1 || p.bits > 8) throw_bad_input("bits must be 1 to 8, got " + std::to_string(p.bits));
  if (p.symmetric && p.bits < 2)
    throw_bad_input("symmetric 1-bit codes have a single level; use scheme binary, or asymmetric codes");
  validate_group_and_scales(p);
  validate_two_level(p);
}

std::vector<PartLayout> layout_int(const QuantParams& p, int64_t rows, int64_t cols) {
  const Geometry g = geometry(p, rows, cols);
  const int sb = scale_bits(p.scale_dtype);
  std::vector<PartLayout> parts = {{"codes", p.bits, rows * cols}};
  if (!g.two_level) {
    parts.push_back({"scales", sb, g.groups});
    if (!p.symmetric) parts.push_back({"mins", sb, g.groups});
  } else {
    parts.push_back({"scales", p.sub_scale_bits, g.groups});
    parts.push_back({"super_scales", sb, g.supers});
    if (!p.symmetric) {
      parts.push_back({"mins", p.sub_scale_bits, g.groups});
      parts.push_back({"super_mins", sb, g.supers});
    }
  }
  return parts;
}

// Two-level: quantizes the group fits of one super-block to sub-codes of a
// stored super scale (and super min), choosing each group's sub-codes among
// the nearest ones by the error they give on the group's weights.
struct SuperResult {
  float super_scale = 0, super_min = 0;
};

SuperResult quantize_super_block(const float* w, const Geometry& g, const QuantParams& p, const float* importance,
                                 int64_t first_group, int64_t end_group, std::vector<UniformFit>& fits,
                                 std::vector<int>& scale_codes, std::vector<int>& min_codes) {
  const CodeRange cr = code_range(p.bits, p.symmetric);
  // Symmetric fits carry the sign in the scale: signed sub-codes. Otherwise
  // scales are >= 0 (unsigned sub-codes) and minimums signed.
  const CodeRange scale_range =
      p.symmetric ? code_range(p.sub_scale_bits, true) : CodeRange{0, (1 << p.sub_scale_bits) - 1, true};
  const CodeRange min_range = code_range(p.sub_scale_bits, true);
  const int64_t n = end_group - first_group;
  std::vector<float> scales(static_cast<size_t>(n)), mins(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    scales[static_cast<size_t>(i)] = fits[static_cast<size_t>(first_group + i)].scale;
    mins[static_cast<size_t>(i)] = fits[static_cast<size_t>(first_group + i)].min;
  }
  SuperResult result;
  result.super_scale = stored_value(fit_search(scales.data(), nullptr, n, scale_range).scale, p.scale_dtype);
  if (!p.symmetric) result.super_min = stored_value(fit_search(mins.data(), nullptr, n, min_range).scale, p.scale_dtype);
  std::vector<float> scratch;
  for (int64_t gi = first_group; gi < end_group; ++gi) {
    const Span s = group_span(g, gi);
    const float* x = w + s.offset;
    const float* wt = group_weights(g, s, importance, scratch);
    UniformFit& f = fits[static_cast<size_t>(gi)];
    const UniformFit scale_fit{result.super_scale, 0.0f}, min_fit{result.super_min, 0.0f};
    const int qs0 = quantize_code(f.scale, scale_fit, scale_range);
    double best_err = INFINITY;
    int best_qs = qs0, best_qm = 0;
    for (int qs = std::max(scale_range.qmin, qs0 - 1); qs <= std::min(scale_range.qmax, qs0 + 1); ++qs) {
      UniformFit trial{result.super_scale * static_cast<float>(qs), 0.0f};
      int qm0 = 0;
      if (!p.symmetric) {
        // The best minimum for this scale: least squares on the codes it gives.
        trial.min = f.min;
        double sw = 0, sr = 0;
        for (int64_t i = 0; i < s.length; ++i) {
          const double wi = wt ? wt[i] : 1.0;
          sw += wi;
          sr += wi * (x[i] - trial.scale * static_cast<float>(quantize_code(x[i], trial, cr)));
        }
        qm0 = quantize_code(sw > 0 ? static_cast<float>(sr / sw) : f.min, min_fit, min_range);
      }
      const int qm_lo = p.symmetric ? 0 : std::max(min_range.qmin, qm0 - 1);
      const int qm_hi = p.symmetric ? 0 : std::min(min_range.qmax, qm0 + 1);
      for (int qm = qm_lo; qm <= qm_hi; ++qm) {
        trial.min = p.symmetric ? 0.0f : result.super_min * static_cast<float>(qm);
        const double err = fit_error(x, wt, s.length, trial, cr);
        if (err < best_err) {
          best_err = err;
          best_qs = qs;
          best_qm = qm;
        }
      }
    }
    scale_codes[static_cast<size_t>(gi)] = best_qs;
    min_codes[static_cast<size_t>(gi)] = best_qm;
    f.scale = result.super_scale * static_cast<float>(best_qs);
    f.min = p.symmetric ? 0.0f : result.super_min * static_cast<float>(best_qm);
  }
  return result;
}

std::vector<QuantPart> quantize_int(const float* w, int64_t rows, int64_t cols, const QuantParams& p,
                                    const QuantizeOptions& o) {
  const Geometry g = geometry(p, rows, cols);
  const CodeRange cr = code_range(p.bits, p.symmetric);
  std::vector<UniformFit> fits(static_cast<size_t>(g.groups));
  // Groups, and the super-blocks of each row, are fitted independently: the
  // threads share out the work and the bytes do not depend on their number.
  const bool parallel = g.groups >= 1024;
  ParallelErrors errors;
#pragma omp parallel if (parallel)
  {
    std::vector<float> scratch;
#pragma omp for schedule(static)
    for (int64_t gi = 0; gi < g.groups; ++gi)
      errors.run(gi, [&] {
        const Span s = group_span(g, gi);
        const float* wt = group_weights(g, s, o.importance, scratch);
        fits[static_cast<size_t>(gi)] =
            o.search ? fit_search(w + s.offset, wt, s.length, cr) : fit_range(w + s.offset, s.length, cr);
      });
  }
  errors.rethrow();
  std::vector<QuantPart> parts;
  const int sb = scale_bits(p.scale_dtype);
  std::vector<float> super_scales, super_mins;
  std::vector<int> scale_codes, min_codes;
  if (g.two_level) {
    scale_codes.resize(static_cast<size_t>(g.groups));
    min_codes.resize(static_cast<size_t>(g.groups));
    super_scales.resize(static_cast<size_t>(rows * g.spr));
    super_mins.resize(super_scales.size());
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t r = 0; r < rows; ++r)
      errors.run(r, [&] {
        for (int64_t j = 0; j < g.spr; ++j) {
          const int64_t first = r * g.gpr + j * g.gps, end = std::min(first + g.gps, (r + 1) * g.gpr);
          const SuperResult sr = quantize_super_block(w, g, p, o.importance, first, end, fits, scale_codes, min_codes);
          super_scales[static_cast<size_t>(r * g.spr + j)] = sr.super_scale;
          super_mins[static_cast<size_t>(r * g.spr + j)] = sr.super_min;
        }
      });
    errors.rethrow();
  } else {
    for (auto& f : fits) {
      f.scale = stored_value(f.scale, p.scale_dtype);
      f.min = stored_value(f.min, p.scale_dtype);
    }
  }
  BitWriter codes(rows * cols, p.bits);
  for (int64_t gi = 0; gi < g.groups; ++gi) {
    const Span s = group_span(g, gi);
    for (int64_t i = 0; i < s.length; ++i)
      codes.put(static_cast<uint32_t>(quantize_code(w[s.offset + i], fits[static_cast<size_t>(gi)], cr) - cr.qmin));
  }
  parts.push_back({"codes", p.bits, rows * cols, codes.take()});
  if (!g.two_level) {
    std::vector<float> scales, mins;
    for (const auto& f : fits) {
      scales.push_back(f.scale);
      mins.push_back(f.min);
    }
    parts.push_back({"scales", sb, g.groups, pack_scales(scales, p.scale_dtype)});
    if (!p.symmetric) parts.push_back({"mins", sb, g.groups, pack_scales(mins, p.scale_dtype)});
  } else {
    const int subs = p.sub_scale_bits;
    const int scale_offset = p.symmetric ? (1 << (subs - 1)) : 0;
    BitWriter sc(g.groups, subs), mc(g.groups, subs);
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      sc.put(static_cast<uint32_t>(scale_codes[static_cast<size_t>(gi)] + scale_offset));
      mc.put(from_signed(min_codes[static_cast<size_t>(gi)], subs));
    }
    parts.push_back({"scales", subs, g.groups, sc.take()});
    parts.push_back({"super_scales", sb, g.supers, pack_scales(super_scales, p.scale_dtype)});
    if (!p.symmetric) {
      parts.push_back({"mins", subs, g.groups, mc.take()});
      parts.push_back({"super_mins", sb, g.supers, pack_scales(super_mins, p.scale_dtype)});
    }
  }
  return parts;
}

// The scale and minimum of each group as the parts store them. The parts are
// looked up once, not per group: dequantizing runs this for every 16-256 weights.
class StoredFits {
 public:
  StoredFits(const QuantTensor& q, const Geometry& g) : p_(q.params), g_(g) {
    scales_ = q.part("scales")->bytes.data();
    if (!p_.symmetric) mins_ = q.part("mins")->bytes.data();
    if (g.two_level) {
      super_scales_ = q.part("super_scales")->bytes.data();
      if (!p_.symmetric) super_mins_ = q.part("super_mins")->bytes.data();
    }
  }

  UniformFit operator()(int64_t gi) const {
    if (!g_.two_level) {
      UniformFit f{read_scale(scales_, gi, p_.scale_dtype), 0.0f};
      if (!p_.symmetric) f.min = read_scale(mins_, gi, p_.scale_dtype);
      return f;
    }
    const int64_t super = (gi / g_.gpr) * g_.spr + (gi % g_.gpr) / g_.gps;
    const int subs = p_.sub_scale_bits;
    const uint32_t sc = read_code(scales_, gi, subs);
    const int scale_code = p_.symmetric ? to_signed(sc, subs) : static_cast<int>(sc);
    UniformFit f{read_scale(super_scales_, super, p_.scale_dtype) * static_cast<float>(scale_code), 0.0f};
    if (!p_.symmetric)
      f.min = read_scale(super_mins_, super, p_.scale_dtype) * static_cast<float>(to_signed(read_code(mins_, gi, subs), subs));
    return f;
  }

  // The fits of row r's groups, as operator() gives them, each super-block's
  // scales read once and no division per group.
  void row(int64_t r, UniformFit* out) const {
    const int64_t first = r * g_.gpr;
    if (!g_.two_level) {
      for (int64_t j = 0; j < g_.gpr; ++j) out[j] = (*this)(first + j);
      return;
    }
    const int subs = p_.sub_scale_bits;
    float super_scale = 0.0f, super_min = 0.0f;
    for (int64_t j = 0, in_super = 0, super = r * g_.spr; j < g_.gpr; ++j) {
      if (in_super == 0) {
        super_scale = read_scale(super_scales_, super, p_.scale_dtype);
        if (!p_.symmetric) super_min = read_scale(super_mins_, super, p_.scale_dtype);
      }
      const uint32_t sc = read_code(scales_, first + j, subs);
      const int scale_code = p_.symmetric ? to_signed(sc, subs) : static_cast<int>(sc);
      out[j] = {super_scale * static_cast<float>(scale_code), 0.0f};
      if (!p_.symmetric) out[j].min = super_min * static_cast<float>(to_signed(read_code(mins_, first + j, subs), subs));
      if (++in_super == g_.gps) {
        in_super = 0;
        ++super;
      }
    }
  }

 private:
  const QuantParams& p_;
  const Geometry& g_;
  const uint8_t *scales_ = nullptr, *mins_ = nullptr, *super_scales_ = nullptr, *super_mins_ = nullptr;
};

UniformFit stored_fit(const QuantTensor& q, const Geometry& g, int64_t gi) { return StoredFits(q, g)(gi); }

// 4- and 8-bit codes in groups within rows (q4, q8 and their group
// variants): read straight from the bytes, a group at a time. Decoding is
// most of a quantized model's matrix-vector time; dequantize_int_reference is
// the plain decoder this must equal bit for bit.
bool dequantize_int_bytes(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out) {
  const Geometry g = geometry(q.params, q.rows, q.cols);
  const int bits = q.params.bits;
  if (g.per_tensor || !(bits == 8 || (bits == 4 && q.cols % 2 == 0 && g.glen % 2 == 0))) return false;
  const int qmin = code_range(bits, q.params.symmetric).qmin;
  const uint8_t* codes = q.part("codes")->bytes.data();
  const StoredFits stored(q, g);
  std::vector<UniformFit> fits(static_cast<size_t>(g.gpr));
  for (int64_t r = row_begin; r < row_end; ++r) {
    float* dst = out + (r - row_begin) * q.cols;
    stored.row(r, fits.data());
    int64_t j = 0;
    for (int64_t c0 = 0; c0 < q.cols; c0 += g.glen, ++j) {
      const UniformFit f = fits[static_cast<size_t>(j)];
      const int64_t n = std::min(g.glen, q.cols - c0);
      const int64_t first = r * q.cols + c0;
      float* d = dst + c0;
      if (bits == 8) {
        const uint8_t* p = codes + first;
        for (int64_t i = 0; i < n; ++i) d[i] = f.scale * static_cast<float>(static_cast<int>(p[i]) + qmin) + f.min;
      } else {
        const uint8_t* p = codes + first / 2;
        for (int64_t i = 0; i < n / 2; ++i) {
          d[2 * i] = f.scale * static_cast<float>(static_cast<int>(p[i] & 15u) + qmin) + f.min;
          d[2 * i + 1] = f.scale * static_cast<float>(static_cast<int>(p[i] >> 4) + qmin) + f.min;
        }
      }
    }
  }
  return true;
}

void dequantize_int(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out) {
  if (!dequantize_int_bytes(q, row_begin, row_end, out)) dequantize_int_reference(q, row_begin, row_end, out);
}

float nearest_int(const QuantTensor& q, int64_t row, int64_t col, float v) {
  const Geometry g = geometry(q.params, q.rows, q.cols);
  const CodeRange cr = code_range(q.params.bits, q.params.symmetric);
  const UniformFit f = stored_fit(q, g, group_of(g, row, col));
  return f.scale * static_cast<float>(quantize_code(v, f, cr)) + f.min;
}

std::vector<QuantPart> encode_int(const QuantTensor& q, const float* w) {
  const Geometry g = geometry(q.params, q.rows, q.cols);
  const CodeRange cr = code_range(q.params.bits, q.params.symmetric);
  BitWriter codes(q.rows * q.cols, q.params.bits);
  const StoredFits stored(q, g);
  for (int64_t gi = 0; gi < g.groups; ++gi) {
    const Span s = group_span(g, gi);
    const UniformFit f = stored(gi);
    for (int64_t i = 0; i < s.length; ++i) codes.put(static_cast<uint32_t>(quantize_code(w[s.offset + i], f, cr) - cr.qmin));
  }
  std::vector<QuantPart> parts = q.parts;
  for (auto& part : parts)
    if (part.name == "codes") part.bytes = codes.take();
  return parts;
}

std::vector<float> linear_scales_int(const QuantTensor& q) {
  if (!q.params.symmetric) return {};
  const Geometry g = geometry(q.params, q.rows, q.cols);
  std::vector<float> scales(static_cast<size_t>(g.groups));
  const StoredFits stored(q, g);
  for (int64_t gi = 0; gi < g.groups; ++gi) scales[static_cast<size_t>(gi)] = stored(gi).scale;
  return scales;
}

}  // namespace

void dequantize_int_reference(const QuantTensor& q, int64_t row_begin, int64_t row_end, float* out) {
  const Geometry g = geometry(q.params, q.rows, q.cols);
  const CodeRange cr = code_range(q.params.bits, q.params.symmetric);
  const uint8_t* codes = q.part("codes")->bytes.data();
  std::vector<uint32_t> buf(static_cast<size_t>(std::min<int64_t>(g.per_tensor ? q.cols : g.glen, 4096)));
  const StoredFits stored(q, g);
  for (int64_t r = row_begin; r < row_end; ++r) {
    float* dst = out + (r - row_begin) * q.cols;
    for (int64_t c0 = 0; c0 < q.cols;) {
      const int64_t gi = group_of(g, r, c0);
      const int64_t end = group_end(g, c0);
      const UniformFit f = stored(gi);
      for (int64_t c = c0; c < end;) {
        const int64_t n = std::min<int64_t>(end - c, static_cast<int64_t>(buf.size()));
        read_codes(codes, r * q.cols + c, n, q.params.bits, buf.data());
        for (int64_t i = 0; i < n; ++i)
          dst[c + i] = f.scale * static_cast<float>(static_cast<int>(buf[static_cast<size_t>(i)]) + cr.qmin) + f.min;
        c += n;
      }
      c0 = end;
    }
  }
}

const Scheme kIntScheme = {
    "int",
    "uniform integer codes, 1-8 bits, per tensor/channel/group, optional two-level scales",
    0,
    validate_int,
    layout_int,
    quantize_int,
    dequantize_int,
    nearest_int,
    encode_int,
    linear_scales_int,
    nullptr,
};

}  // namespace slmopt::quant
