#include <string>

#include "core/error.hpp"
#include "quant/scheme.hpp"

#include "quant/group_geometry.hpp"
#include "quant/scale_store.hpp"
#include "quant/scheme_families.hpp"
#include "quant/sparse.hpp"
#include "quant/bitpack.hpp"

namespace slmopt::quant {

const std::vector<const Scheme*>& all_schemes() {
  static const std::vector<const Scheme*> schemes = {
      &kIntScheme, &kTernaryScheme, &kBinaryScheme, &kNormalFloatScheme, &kFittedTableScheme, &kTrellisScheme, &kEntropyScheme, &kFloatScheme,
  };
  return schemes;
}

Decoder reference_decoder(const Scheme& scheme) {
  if (&scheme == &kIntScheme) return dequantize_int_reference;
  if (&scheme == &kNormalFloatScheme || &scheme == &kFittedTableScheme) return dequantize_lut_reference;
  if (&scheme == &kEntropyScheme) return dequantize_ec_reference;
  return scheme.dequantize;
}

const Scheme* find_scheme(std::string_view name) {
  for (const Scheme* s : all_schemes())
    if (s->name == name) return s;
  return nullptr;
}

const Scheme& scheme_or_throw(std::string_view name) {
  if (const Scheme* s = find_scheme(name)) return *s;
  std::string known;
  for (const Scheme* s : all_schemes()) known += (known.empty() ? "" : ", ") + std::string(s->name);
  throw_bad_input("unknown quantization scheme '" + std::string(name) + "' (known: " + known + ")");
}

void validate_group_and_scales(const QuantParams& p) {
  if (p.group < -1) throw_bad_input("group size must be positive, got " + std::to_string(p.group));
  if (p.scale_dtype != DType::F16 && p.scale_dtype != DType::F32)
    throw_bad_input(std::string("scales must be f16 or f32, got ") + dtype_name(p.scale_dtype));
}

void validate_two_level(const QuantParams& p) {
  if (p.sub_scale_bits == 0) return;
  if (p.sub_scale_bits < 4 || p.sub_scale_bits > 8)
    throw_bad_input("scale bits of a super-block must be 4 to 8, got " + std::to_string(p.sub_scale_bits));
  if (p.group <= 0) throw_bad_input("two-level scales need a group size");
  if (p.super_block <= 0 || p.super_block % p.group != 0 || p.super_block / p.group < 2)
    throw_bad_input("super-block " + std::to_string(p.super_block) + " must be a multiple (at least 2) of group " +
                    std::to_string(p.group));
}

void require_single_level(const QuantParams& p, std::string_view scheme) {
  if (p.sub_scale_bits != 0) throw_bad_input("scheme " + std::string(scheme) + " has no two-level scales");
}

double layout_bits_per_weight(const Scheme& scheme, const QuantParams& params, int64_t rows, int64_t cols) {
  int64_t bits = 0;
  for (const auto& part : scheme.layout(params, rows, cols)) bits += (part.count < 0 ? -part.count : part.count) * part.bits;
  return rows * cols > 0 ? static_cast<double>(bits) / static_cast<double>(rows * cols) : 0.0;
}

void validate_quant_tensor(const QuantTensor& q) {
  const Scheme& scheme = scheme_or_throw(q.scheme);
  scheme.validate(q.params);
  if (q.rows < 0 || q.cols < 0) throw_bad_input("quantized tensor has a negative size");
  auto layout = scheme.layout(q.params, q.rows, q.cols);
  if (is_sparse(q)) {
    // The mask is checked first: the codes it keeps set the codes' count.
    const QuantPart& mask = q.parts.back();
    const int64_t n = q.rows * q.cols;
    if (mask.bits != 1 || mask.count != n || mask.bytes.size() != packed_bytes(n, 1))
      throw_bad_input("quantized tensor's mask (" + std::to_string(mask.count) + " x " + std::to_string(mask.bits) +
                      " bits, " + std::to_string(mask.bytes.size()) + " bytes) does not cover its " + std::to_string(n) +
                      " weights");
    const int64_t kept = count_kept(mask.bytes.data(), n);
    for (auto& part : layout)
      if (part.name == "codes") {
        if (part.count != n) throw_bad_input("scheme " + q.scheme + " packs its codes and cannot be stored sparse");
        part.count = kept;
      }
    layout.push_back({kMaskPart, 1, n});
  }
  if (layout.size() != q.parts.size())
    throw_bad_input("quantized tensor of scheme " + q.scheme + " has " + std::to_string(q.parts.size()) +
                    " parts, expected " + std::to_string(layout.size()));
  for (size_t i = 0; i < layout.size(); ++i) {
    auto want = layout[i];
    const auto& got = q.parts[i];
    // A variable-length part may hold any count; the scheme's check reads it.
    if (want.count < 0 && got.count >= 0 && got.count <= (int64_t{1} << 40)) want.count = got.count;
    if (got.name != want.name || got.bits != want.bits || got.count != want.count ||
        got.bytes.size() != static_cast<size_t>((want.count * want.bits + 7) / 8))
      throw_bad_input("quantized tensor part '" + got.name + "' (" + std::to_string(got.count) + " x " +
                      std::to_string(got.bits) + " bits, " + std::to_string(got.bytes.size()) +
                      " bytes) does not match scheme " + q.scheme + "'s '" + want.name + "' (" +
                      std::to_string(want.count) + " x " + std::to_string(want.bits) + " bits)");
  }
  if (scheme.check) scheme.check(q);
}

std::vector<float> stored_scales(const QuantTensor& q) {
  const Geometry g = geometry(q.params, q.rows, q.cols);
  const uint8_t* bytes = q.part("scales")->bytes.data();
  std::vector<float> scales(static_cast<size_t>(g.groups));
  for (int64_t i = 0; i < g.groups; ++i) scales[static_cast<size_t>(i)] = read_scale(bytes, i, q.params.scale_dtype);
  return scales;
}

}  // namespace slmopt::quant
