#include "quant/spec.hpp"

#include <charconv>

#include "core/error.hpp"

namespace slmopt::quant {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

bool parse_int(std::string_view s, int64_t& v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

bool user_scheme(const Scheme& s) { return s.name != "float"; }

[[noreturn]] void bad(std::string_view text, const std::string& why) {
  throw_bad_input("quantization spec '" + std::string(text) + "': " + why);
}

}  // namespace

const std::vector<Preset>& presets() {
  // Tuned against llama.cpp's types at equal or fewer bits per weight
  // (bench/bench_quant.cpp prints the comparison).
  static const std::vector<Preset> table = {
      {"q8", "int8-g32", "8-bit, f16 scale per 32 (8.5 bpw)"},
      {"q6", "int6-g16-k8", "6-bit, 8-bit group scales in super-blocks (6.5625 bpw)"},
      {"q5", "int5-g32-asym-k6", "5-bit with minimums, 6-bit group scales (5.5 bpw)"},
      {"q4", "int4-g32-asym-k6", "4-bit with minimums, 6-bit group scales (4.5 bpw)"},
      {"q4n", "lut4-g32-k6x512", "4-bit into a fitted 16-level table, 6-bit group scales (4.22 bpw)"},
      {"q3", "int3-g16-k6", "3-bit, 6-bit group scales (3.4375 bpw)"},
      {"q2", "int2-g16-asym-k4", "2-bit with minimums, 4-bit group scales (2.625 bpw)"},
      {"t2", "ternary-g64", "ternary {-1,0,1} x f16 scale per 64 (1.85 bpw)"},
      {"b1", "binary-g64", "sign x f16 scale per 64 (1.25 bpw)"},
  };
  return table;
}

QuantSpec parse_spec(std::string_view text) {
  for (const auto& p : presets())
    if (text == p.name) return parse_spec(p.spec);
  const auto fields = split(text, '-');
  std::string_view head = fields[0];
  size_t digits = head.size();
  while (digits > 0 && head[digits - 1] >= '0' && head[digits - 1] <= '9') --digits;
  QuantSpec spec;
  spec.scheme = find_scheme(head.substr(0, digits));
  // The float scheme stores sparse float weights; rules keep floats with `keep: f16|f32`.
  if (spec.scheme && !user_scheme(*spec.scheme)) spec.scheme = nullptr;
  if (!spec.scheme) {
    std::string known;
    for (const Scheme* s : all_schemes())
      if (user_scheme(*s)) known += (known.empty() ? "" : ", ") + std::string(s->name);
    for (const auto& p : presets()) known += std::string(", ") + p.name;
    bad(text, "unknown scheme '" + std::string(head.substr(0, digits)) + "' (known: " + known + ")");
  }
  int64_t bits = spec.scheme->fixed_bits;
  if (digits < head.size() && !parse_int(head.substr(digits), bits)) bad(text, "bad bit width");
  if (bits == 0 && digits == head.size()) bad(text, "scheme " + std::string(spec.scheme->name) + " needs a bit width, e.g. " +
                               std::string(spec.scheme->name) + "4");
  if (spec.scheme->fixed_bits && bits != spec.scheme->fixed_bits)
    bad(text, std::string(spec.scheme->name) + " has a fixed code width");
  if (bits < 1 || bits > 8) bad(text, "bits must be 1 to 8, got " + std::to_string(bits));
  spec.params.bits = static_cast<int>(bits);
  for (size_t i = 1; i < fields.size(); ++i) {
    std::string_view f = fields[i];
    int64_t v = 0;
    if (f == "ch") {
      spec.params.group = 0;
    } else if (f == "tensor") {
      spec.params.group = -1;
    } else if (f == "asym") {
      spec.params.symmetric = false;
    } else if (f == "f32") {
      spec.params.scale_dtype = DType::F32;
    } else if (f.size() > 1 && f[0] == 'g') {
      if (!parse_int(f.substr(1), v) || v <= 0) bad(text, "group size must be a positive integer, got '" + std::string(f.substr(1)) + "'");
      spec.params.group = v;
    } else if (f.size() > 1 && f[0] == 'k') {
      const auto kx = split(f.substr(1), 'x');
      if (!parse_int(kx[0], v)) bad(text, "bad scale bits '" + std::string(f) + "'");
      spec.params.sub_scale_bits = static_cast<int>(v);
      if (kx.size() > 2 || (kx.size() == 2 && (!parse_int(kx[1], v) || v <= 0))) bad(text, "bad super-block '" + std::string(f) + "'");
      if (kx.size() == 2) spec.params.super_block = v;
    } else {
      bad(text, "unknown field '" + std::string(f) + "' (expected g<N>, ch, tensor, asym, k<B>[x<S>], f32)");
    }
  }
  try {
    spec.scheme->validate(spec.params);
  } catch (const Error& e) {
    bad(text, e.what());
  }
  return spec;
}

std::string format_spec(const QuantSpec& spec) {
  const QuantParams& p = spec.params;
  std::string s(spec.scheme->name);
  if (!spec.scheme->fixed_bits) s += std::to_string(p.bits);
  if (p.group > 0) s += "-g" + std::to_string(p.group);
  else if (p.group == 0) s += "-ch";
  else s += "-tensor";
  if (!p.symmetric) s += "-asym";
  if (p.sub_scale_bits) {
    s += "-k" + std::to_string(p.sub_scale_bits);
    if (p.super_block != 256) s += "x" + std::to_string(p.super_block);
  }
  if (p.scale_dtype == DType::F32) s += "-f32";
  return s;
}

QuantSpec spec_for_bits(int bits) {
  static const char* const by_bits[9] = {nullptr, "b1", "q2", "q3", "q4", "q5", "q6", "int7-g32", "q8"};
  if (bits < 1 || bits > 8) throw_bad_input("bits must be 1 to 8, got " + std::to_string(bits));
  return parse_spec(by_bits[bits]);
}

}  // namespace slmopt::quant
