// Integer kernels of the full-integer path: the integer product against its
// triple-loop definition, TFLite-style fixed-point requantization against an
// exact rational rendering, and QLinearConv / QLinearMatMul against a plain
// reference of ONNX's definition, in both requantization modes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include <nlohmann/json.hpp>

#include "calib/npy.hpp"
#include "core/error.hpp"
#include "onnx/onnx_io.hpp"
#include "runtime/kernels/integer_gemm.hpp"
#include "runtime/requantization.hpp"
#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;
using runtime::FixedPointMultiplier;
using runtime::Requantization;

namespace {

enum class Ties { Up, AwayFromZero };

// round(v / 2^bits) in exact integer arithmetic, ties as asked.
__int128 round_shift(__int128 v, int bits, Ties ties) {
  if (bits == 0) return v;
  const __int128 d = static_cast<__int128>(1) << bits;
  const __int128 q = v / d, r = v % d;  // truncating
  const __int128 twice = 2 * (r < 0 ? -r : r);
  if (twice > d || (twice == d && (ties == Ties::AwayFromZero || v > 0))) return v < 0 ? q - 1 : q + 1;
  return q;
}

// TFLite's two roundings written from their definition: acc * M / 2^31 with ties up (gemmlowp's
// doubling high multiply), then / 2^-shift with ties away from zero (RoundingDivideByPOT).
int64_t fixed_point_definition(int64_t acc, FixedPointMultiplier m) {
  const int left = std::max(m.shift, 0), right = std::max(-m.shift, 0);
  const __int128 high = round_shift(static_cast<__int128>(acc << left) * m.multiplier, 31, Ties::Up);
  return static_cast<int64_t>(round_shift(high, right, Ties::AwayFromZero));
}

Tensor u8(std::vector<int64_t> shape, uint32_t seed) {
  std::mt19937 rng(seed);
  Tensor t(DType::U8, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(rng() % 256);
  return t;
}

Tensor i8(std::vector<int64_t> shape, uint32_t seed) {
  std::mt19937 rng(seed);
  Tensor t(DType::I8, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<int8_t>()[i] = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  return t;
}

Tensor scalar_f(float v) { return Tensor::from_values<float>(DType::F32, {}, {v}); }
Tensor scalar_u8(uint8_t v) { return Tensor::from_values<uint8_t>(DType::U8, {}, {v}); }

// Runs one node whose inputs are all initializers.
Tensor run_node(const std::string& op, const std::vector<Tensor>& inputs, std::vector<Attribute> attributes,
                Requantization mode) {
  Model m;
  m.opsets = {{"", 13}};
  std::vector<std::string> names;
  for (size_t i = 0; i < inputs.size(); ++i) {
    names.push_back("in" + std::to_string(i));
    m.graph.initializers.push_back({names.back(), inputs[i], ""});
  }
  m.graph.nodes = {Node{"n", op, "", names, {"y"}, std::move(attributes), {}}};
  m.graph.outputs = {{"y", inputs[7].dtype(), std::nullopt, {}, {}, {}}};
  runtime::Session s(m);
  s.set_requantization(mode);
  return s.run({}).at("y");
}

// ONNX's definition, requantized either way.
int64_t requantize_reference(int64_t acc, double xs, double ws, double ys, int64_t zero, Requantization mode, bool is_u8) {
  const int64_t scaled = mode == Requantization::Exact
                             ? static_cast<int64_t>(std::nearbyint(static_cast<double>(acc) * (xs * ws) / ys))
                             : fixed_point_definition(acc, runtime::fixed_point_multiplier(xs * ws / ys));
  return std::clamp<int64_t>(scaled + zero, is_u8 ? 0 : -128, is_u8 ? 255 : 127);
}

}  // namespace

TEST_CASE("the integer product equals its definition, also past int32's reach of one sum") {
  std::mt19937 rng(7);
  auto operand = [&](int64_t n, bool extreme) {
    std::vector<int16_t> v(static_cast<size_t>(n));
    for (auto& e : v) e = extreme ? int16_t{255} : static_cast<int16_t>(static_cast<int>(rng() % 511) - 255);
    return v;
  };
  for (auto [m, n, k, extreme] : std::vector<std::tuple<int64_t, int64_t, int64_t, bool>>{
           {1, 1, 1, false}, {3, 17, 9, false}, {8, 33, 100, false}, {2, 3, 70000, true}, {2, 5, 40000, false}, {0, 4, 3, false},
           {4, 0, 3, false}, {3, 4, 0, false}}) {
    INFO(m << "x" << n << "x" << k);
    const auto a = operand(m * k, extreme), b = operand(k * n, extreme);
    std::vector<int64_t> want(static_cast<size_t>(m * n), -1), got(static_cast<size_t>(m * n), -2);
    runtime::integer_gemm_reference(m, n, k, a.data(), b.data(), want.data());
    runtime::integer_gemm(m, n, k, a.data(), b.data(), got.data());
    CHECK(got == want);
    if (extreme) CHECK(want[0] == int64_t{70000} * 255 * 255);  // > 2^31: one int32 sum would have wrapped
  }
}

TEST_CASE("fixed-point multipliers: TFLite's encoding, and its two roundings to within one of exact") {
  CHECK(runtime::fixed_point_multiplier(0.5).multiplier == (1 << 30));
  CHECK(runtime::fixed_point_multiplier(0.5).shift == 0);
  CHECK(runtime::fixed_point_multiplier(1.0).shift == 1);
  CHECK(runtime::fixed_point_multiplier(0.25).shift == -1);
  // A fraction that rounds up to 2^31 moves to the next power of two.
  const FixedPointMultiplier up = runtime::fixed_point_multiplier(1.0 - std::ldexp(1.0, -40));
  CHECK(up.multiplier == (1 << 30));
  CHECK(up.shift == 1);
  CHECK(runtime::fixed_point_multiplier(0.0).multiplier == 0);
  CHECK(runtime::fixed_point_multiplier(std::ldexp(1.0, -40)).multiplier == 0);  // below 2^-32: zero, as TFLite
  for (double bad : {-0.5, std::nan(""), std::ldexp(1.0, 31)}) CHECK_THROWS_AS(runtime::fixed_point_multiplier(bad), Error);

  // gemmlowp's doubling high multiply rounds a tie up, for negative products too (-2.5 -> -2);
  // ONNX's exact rounding takes ties to even.
  const FixedPointMultiplier half = runtime::fixed_point_multiplier(0.5);
  CHECK(runtime::multiply_fixed_point(5, half) == 3);
  CHECK(runtime::multiply_fixed_point(-5, half) == -2);
  CHECK(runtime::multiply_fixed_point(-7, half) == -3);
  for (int32_t acc = -64; acc <= 64; ++acc)  // every tie of both roundings, against the definition
    for (double real : {0.5, 0.25, 0.125, 0.75, 0.375})
      CHECK(runtime::multiply_fixed_point(acc, runtime::fixed_point_multiplier(real)) ==
            fixed_point_definition(acc, runtime::fixed_point_multiplier(real)));
  CHECK(runtime::multiply_fixed_point(3, runtime::fixed_point_multiplier(0.25)) == 1);
  CHECK(runtime::multiply_fixed_point(std::numeric_limits<int32_t>::min(), FixedPointMultiplier{std::numeric_limits<int32_t>::min(), 0}) ==
        std::numeric_limits<int32_t>::max());  // the one saturating product

  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> log_real(-20, 2);
  int64_t off_by_one = 0;
  int64_t near_tie = 0;
  for (int i = 0; i < 200000; ++i) {
    const double real = std::exp2(log_real(rng));
    const auto acc = static_cast<int32_t>(static_cast<int64_t>(rng() % (int64_t{1} << 26)) - (int64_t{1} << 25));
    const FixedPointMultiplier m = runtime::fixed_point_multiplier(real);
    const int32_t got = runtime::multiply_fixed_point(acc, m);
    REQUIRE(got == fixed_point_definition(acc, m));
    const double exact = static_cast<double>(acc) * real;
    REQUIRE(std::abs(static_cast<double>(got) - exact) <= 1.0);
    // A result differs from round(exact) only where exact sits within the two roundings' error of
    // a half: the 31-bit multiplier (relative 2^-30) and, for a right shift, the first rounding
    // (half a unit before the shift).
    const double band = std::abs(exact) * std::ldexp(1.0, -30) + (m.shift < 0 ? std::ldexp(0.5, m.shift) : 0.0) +
                        std::abs(exact) * std::ldexp(1.0, -50);
    const bool in_band = std::abs(std::abs(exact - std::floor(exact)) - 0.5) <= band;
    near_tie += in_band;
    if (got != static_cast<int64_t>(std::round(exact))) {
      ++off_by_one;
      REQUIRE(in_band);
    }
  }
  CHECK(off_by_one > 0);  // the sample does reach the near-tie band
  CHECK(off_by_one <= near_tie);
}

TEST_CASE("QLinearMatMul: an integer product requantized exactly (ties to even) or in fixed point (ties up)") {
  // a [2, 3] (zero point 128), b [3, 4] int8 with one zero point per column; scales make the multiplier 0.5.
  const Tensor a = Tensor::from_values<uint8_t>(DType::U8, {2, 3}, {129, 131, 128, 133, 128, 127});
  const Tensor b = Tensor::from_values<int8_t>(DType::I8, {3, 4}, {1, 2, 3, 4, 0, 0, 0, 1, 0, 0, 0, 0});
  const Tensor bz = Tensor::from_values<int8_t>(DType::I8, {4}, {0, 0, 0, 0});
  const Tensor bs = Tensor::from_values<float>(DType::F32, {4}, {0.25f, 0.25f, 0.25f, 0.25f});
  const std::vector<Tensor> in = {a, scalar_f(2.0f), scalar_u8(128), b, bs, bz, scalar_f(1.0f), scalar_u8(100)};
  // Row 0: acc = 1*[1,2,3,4] + 3*[0,0,0,1] = [1, 2, 3, 7]; times 0.5 = [0.5, 1, 1.5, 3.5].
  const Tensor exact = run_node("QLinearMatMul", in, {}, Requantization::Exact);
  const Tensor fixed = run_node("QLinearMatMul", in, {}, Requantization::FixedPoint);
  CHECK(std::vector<uint8_t>(exact.data<uint8_t>(), exact.data<uint8_t>() + 4) == std::vector<uint8_t>{100, 101, 102, 104});
  CHECK(std::vector<uint8_t>(fixed.data<uint8_t>(), fixed.data<uint8_t>() + 4) == std::vector<uint8_t>{101, 101, 102, 104});
  // Row 1: acc = 5*[1,2,3,4] = [5, 10, 15, 20] -> [2.5, 5, 7.5, 10].
  CHECK(std::vector<uint8_t>(exact.data<uint8_t>() + 4, exact.data<uint8_t>() + 8) == std::vector<uint8_t>{102, 105, 108, 110});
  CHECK(std::vector<uint8_t>(fixed.data<uint8_t>() + 4, fixed.data<uint8_t>() + 8) == std::vector<uint8_t>{103, 105, 108, 110});
}

TEST_CASE("QLinearMatMul and QLinearConv equal ONNX's definition on random operands, both modes") {
  for (Requantization mode : {Requantization::Exact, Requantization::FixedPoint}) {
    INFO(runtime::requantization_name(mode));
    SECTION("QLinearMatMul, batched A, per-column B") {
      const int64_t B = 2, M = 3, K = 37, N = 5;
      const Tensor a = u8({B, M, K}, 1), b = i8({K, N}, 2);
      const Tensor bz = i8({N}, 3), bs = Tensor::from_values<float>(DType::F32, {N}, {0.01f, 0.02f, 0.005f, 0.03f, 0.011f});
      const float as = 0.05f, ys = 0.7f;
      const uint8_t az = 120, yz = 130;
      const Tensor y = run_node("QLinearMatMul", {a, scalar_f(as), scalar_u8(az), b, bs, bz, scalar_f(ys), scalar_u8(yz)}, {}, mode);
      REQUIRE(y.shape() == std::vector<int64_t>{B, M, N});
      for (int64_t r = 0; r < B * M; ++r)
        for (int64_t n = 0; n < N; ++n) {
          int64_t acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += (int64_t{a.data<uint8_t>()[r * K + k]} - az) * (int64_t{b.data<int8_t>()[k * N + n]} - bz.data<int8_t>()[n]);
          REQUIRE(int64_t{y.data<uint8_t>()[r * N + n]} == requantize_reference(acc, as, bs.data<float>()[n], ys, yz, mode, true));
        }
    }
    SECTION("QLinearConv: padding, stride, dilation, groups, per-channel weights, bias") {
      const int64_t C = 4, H = 7, W = 6, M = 6, G = 2, KH = 3, KW = 2;
      const Tensor x = u8({1, C, H, W}, 4), w = i8({M, C / G, KH, KW}, 5);
      const Tensor wz = Tensor::from_values<int8_t>(DType::I8, {M}, {0, 0, 0, 0, 0, 0});  // int8 weights: symmetric
      std::vector<float> wsv;
      for (int64_t m = 0; m < M; ++m) wsv.push_back(0.002f * static_cast<float>(m + 1));
      const Tensor ws = Tensor::from_values<float>(DType::F32, {M}, wsv);
      const Tensor bias = Tensor::from_values<int32_t>(DType::I32, {M}, {100, -2000, 0, 77, 5000, -1});
      const float xs = 0.1f, ys = 0.05f;
      const uint8_t xz = 90, yz = 128;
      const std::vector<int64_t> pads = {1, 0, 2, 1}, strides = {2, 1}, dil = {1, 2};
      const Tensor y = run_node("QLinearConv", {x, scalar_f(xs), scalar_u8(xz), w, ws, wz, scalar_f(ys), scalar_u8(yz), bias},
                                {Attribute::integers("pads", pads), Attribute::integers("strides", strides),
                                 Attribute::integers("dilations", dil), Attribute::integer("group", G)},
                                mode);
      const int64_t OH = (H + pads[0] + pads[2] - dil[0] * (KH - 1) - 1) / strides[0] + 1;
      const int64_t OW = (W + pads[1] + pads[3] - dil[1] * (KW - 1) - 1) / strides[1] + 1;
      REQUIRE(y.shape() == std::vector<int64_t>{1, M, OH, OW});
      for (int64_t m = 0; m < M; ++m)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            int64_t acc = bias.data<int32_t>()[m];
            const int64_t g = m / (M / G);
            for (int64_t ci = 0; ci < C / G; ++ci)
              for (int64_t kh = 0; kh < KH; ++kh)
                for (int64_t kw = 0; kw < KW; ++kw) {
                  const int64_t ih = oh * strides[0] - pads[0] + kh * dil[0], iw = ow * strides[1] - pads[1] + kw * dil[1];
                  if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;  // padding is a real zero
                  acc += (int64_t{x.data<uint8_t>()[((g * (C / G) + ci) * H + ih) * W + iw]} - xz) *
                         int64_t{w.data<int8_t>()[((m * (C / G) + ci) * KH + kh) * KW + kw]};
                }
            REQUIRE(int64_t{y.data<uint8_t>()[(m * OH + oh) * OW + ow]} ==
                    requantize_reference(acc, xs, wsv[static_cast<size_t>(m)], ys, yz, mode, true));
          }
    }
    SECTION("a 1-D QLinearConv equals the same convolution as 2-D of height 1") {
      const Tensor x = u8({1, 3, 20}, 6), w = i8({4, 3, 5}, 7);
      const Tensor ws = scalar_f(0.01f), wz = Tensor::from_values<int8_t>(DType::I8, {}, {0});
      std::vector<Tensor> in = {x, scalar_f(0.1f), scalar_u8(100), w, ws, wz, scalar_f(0.2f), scalar_u8(128)};
      const Tensor y1 = run_node("QLinearConv", in, {Attribute::integers("pads", {2, 1}), Attribute::integers("strides", {3})}, mode);
      in[0] = x.with_shape({1, 3, 1, 20});
      in[3] = w.with_shape({4, 3, 1, 5});
      const Tensor y2 =
          run_node("QLinearConv", in, {Attribute::integers("pads", {0, 2, 0, 1}), Attribute::integers("strides", {1, 3})}, mode);
      REQUIRE(y1.numel() == y2.numel());
      CHECK(std::equal(y1.data<uint8_t>(), y1.data<uint8_t>() + y1.numel(), y2.data<uint8_t>()));
    }
  }
}

TEST_CASE("QLinear ops refuse operands they cannot run, naming the problem") {
  const Tensor a = u8({2, 3}, 1), b = i8({3, 4}, 2);
  const Tensor bz = Tensor::from_values<int8_t>(DType::I8, {}, {0});
  auto fails = [&](std::vector<Tensor> in, const std::string& message) {
    try {
      run_node("QLinearMatMul", in, {}, Requantization::Exact);
      FAIL("no error: " << message);
    } catch (const Error& e) {
      CHECK_THAT(e.what(), Catch::Contains(message));
    }
  };
  fails({a, scalar_f(1), scalar_u8(0), b, scalar_f(1), Tensor::from_values<uint8_t>(DType::U8, {}, {0}), scalar_f(1), scalar_u8(0)},
        "B's zero point has another type");
  fails({a, scalar_f(1), scalar_u8(0), b, Tensor::from_values<float>(DType::F32, {3}, {1, 1, 1}), bz, scalar_f(1), scalar_u8(0)},
        "b_scale has 3 values for 4 output channels");
  fails({a, scalar_f(-1), scalar_u8(0), b, scalar_f(1), bz, scalar_f(1), scalar_u8(0)}, "a_scale must be positive");
  fails({a, scalar_f(1), scalar_u8(0), i8({4, 4}, 3), scalar_f(1), bz, scalar_f(1), scalar_u8(0)}, "do not multiply");
}

TEST_CASE("slmopt run and eval --requantize: the device's rounding from the command line") {
  // The tie case above with `a` as the graph's input.
  Model m;
  m.opsets = {{"", 13}};
  m.graph.inputs = {{"a", DType::U8, std::vector<Dim>{{2, {}, {}}, {3, {}, {}}}, {}, {}, {}}};
  const std::vector<Tensor> consts = {scalar_f(2.0f),
                                      scalar_u8(128),
                                      Tensor::from_values<int8_t>(DType::I8, {3, 4}, {1, 2, 3, 4, 0, 0, 0, 1, 0, 0, 0, 0}),
                                      Tensor::from_values<float>(DType::F32, {4}, {0.25f, 0.25f, 0.25f, 0.25f}),
                                      Tensor::from_values<int8_t>(DType::I8, {4}, {0, 0, 0, 0}),
                                      scalar_f(1.0f),
                                      scalar_u8(100)};
  std::vector<std::string> names = {"a"};
  for (size_t i = 0; i < consts.size(); ++i) {
    names.push_back("c" + std::to_string(i));
    m.graph.initializers.push_back({names.back(), consts[i], ""});
  }
  m.graph.nodes = {Node{"mm", "QLinearMatMul", "", names, {"y"}, {}, {}}};
  m.graph.outputs = {{"y", DType::U8, std::nullopt, {}, {}, {}}};
  test::TempDir tmp;
  onnx_format::write_onnx(m, tmp.file("q.onnx"));
  calib::write_npy(tmp.file("a.npy"), Tensor::from_values<uint8_t>(DType::U8, {2, 3}, {129, 131, 128, 133, 128, 127}));
  const std::string model = " '" + tmp.file("q.onnx") + "' --input 'a=" + tmp.file("a.npy") + "'";
  auto outputs = [&](const std::string& mode) {
    const auto r = test::run_slmopt("run" + model + " -o '" + tmp.file(mode) + "' --requantize " + mode + " -q");
    REQUIRE(r.exit_code == 0);
    const Tensor y = calib::read_npy(tmp.file(mode + "/y.npy"));
    return std::vector<uint8_t>(y.data<uint8_t>(), y.data<uint8_t>() + y.numel());
  };
  CHECK(outputs("exact") == std::vector<uint8_t>{100, 101, 102, 104, 102, 105, 108, 110});
  CHECK(outputs("fixed-point") == std::vector<uint8_t>{101, 101, 102, 104, 103, 105, 108, 110});

  // eval: the same file as reference (exact) and candidate (fixed-point) differs by the ties.
  const std::string pair = " --reference '" + tmp.file("q.onnx") + "' --candidate '" + tmp.file("q.onnx") + "' --input 'a=" +
                           tmp.file("a.npy") + "'";
  auto r = test::run_slmopt("eval" + pair + " --requantize fixed-point --json");
  REQUIRE(r.exit_code == 0);
  const auto doc = nlohmann::json::parse(r.out);
  CHECK(doc["requantize"] == "fixed-point");
  CHECK(r.out.find("\"max_abs\"") != std::string::npos);
  r = test::run_slmopt("eval" + pair + " --json");
  REQUIRE(r.exit_code == 0);
  CHECK(nlohmann::json::parse(r.out)["requantize"] == "exact");
  CHECK(r.out != test::run_slmopt("eval" + pair + " --requantize fixed-point --json").out);

  r = test::run_slmopt("run" + model + " --requantize nearest");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--requantize"));
  r = test::run_slmopt("eval --reference '" + tmp.file("q.onnx") + "' --candidate '" + tmp.file("q.onnx") +
                       "' --text '" + tmp.file("a.npy") + "' --requantize fixed-point");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("does not combine with --text"));
}
