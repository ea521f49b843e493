#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "calib/npy.hpp"
#include "calib/npz.hpp"
#include "core/memory_limit.hpp"

#include <zlib.h>
#include "eval/gate.hpp"
#include "eval/metrics.hpp"
#include "onnx/onnx_io.hpp"
#include "runtime/kernels/im2col.hpp"
#include "runtime/kernels/matmul.hpp"
#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;
namespace fs = std::filesystem;

TEST_CASE("the fast matmul matches the reference matmul on random matrices") {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto [m, k, n] : {std::tuple{1, 1, 1}, {7, 13, 5}, {64, 172, 64}, {3, 0, 4}, {33, 65, 17}}) {
    std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(k * n)), fast(static_cast<size_t>(m * n)),
        ref(static_cast<size_t>(m * n));
    for (auto& v : a) v = u(rng);
    for (auto& v : b) v = u(rng);
    runtime::matmul_reference(a.data(), b.data(), ref.data(), m, k, n);
    if (k > 0) runtime::matmul_fast(a.data(), b.data(), fast.data(), m, k, n);
    else fast = ref;
    for (size_t i = 0; i < ref.size(); ++i) CHECK(fast[i] == Approx(ref[i]).margin(1e-5));
  }
}

TEST_CASE("npy files round-trip for every supported dtype and hostile ones are refused") {
  test::TempDir tmp;
  for (DType t : {DType::F32, DType::F64, DType::F16, DType::I8, DType::U8, DType::I16, DType::U16, DType::I32, DType::U32,
                  DType::I64, DType::U64, DType::Bool}) {
    Tensor x = test::random_tensor(t, {3, 4}, 9);
    calib::write_npy(tmp.file("x.npy"), x);
    CHECK(calib::read_npy(tmp.file("x.npy")).bit_equal(x));
  }
  Tensor scalar = Tensor::from_values<float>(DType::F32, {}, {2.5f});
  calib::write_npy(tmp.file("s.npy"), scalar);
  CHECK(calib::read_npy(tmp.file("s.npy")).bit_equal(scalar));
  Tensor vec = test::random_tensor(DType::F32, {5}, 1);
  calib::write_npy(tmp.file("v.npy"), vec);
  CHECK(calib::read_npy(tmp.file("v.npy")).bit_equal(vec));

  auto npy = [](const std::string& header, const std::string& data) {
    std::string s = "\x93NUMPY\x01";
    s += '\0';
    s += static_cast<char>(header.size());
    s += '\0';
    return s + header + data;
  };
  auto error_of = [&](const std::string& bytes) {
    test::write_bytes(tmp.file("bad.npy"), bytes);
    try {
      calib::read_npy(tmp.file("bad.npy"));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string f = tmp.file("bad.npy") + ": ";
  CHECK(error_of("PK\x03\x04 not npy") == f + "not a .npy file (bad magic)");
  CHECK(error_of(npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", std::string(8, '\0'))) ==
        f + "unsupported npy dtype '>f4' (little-endian numeric types only)");
  CHECK(error_of(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", std::string(8, '\0'))) ==
        f + "Fortran-ordered arrays are not supported");
  CHECK(error_of(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", std::string(8, '\0'))) ==
        f + "npy data holds 8 bytes, shape [3] of f32 needs 12");
  CHECK(error_of(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", "")) ==
        f + "element count overflows 64-bit integers");
  std::string truncated = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", "");
  CHECK(error_of(truncated.substr(0, 20)) == f + "npy header runs past the end of the file");
}

TEST_CASE("metrics: identical, scaled and reordered outputs") {
  Tensor r = Tensor::from_values<float>(DType::F32, {2, 3}, {1, 2, 3, 3, 2, 1});
  auto same = eval::compare_tensors(r, r);
  CHECK(same["max_abs"] == 0);
  CHECK(same["rel_l2"] == 0);
  CHECK(same["cosine"] == Approx(1));
  CHECK(same["sqnr_db"] == 200);
  CHECK(same["top1"] == 1);
  CHECK(same["kl"] == Approx(0).margin(1e-12));

  Tensor c = Tensor::from_values<float>(DType::F32, {2, 3}, {1, 2, 3, 1, 2, 3});
  auto m = eval::compare_tensors(r, c);
  CHECK(m["max_abs"] == 2);
  CHECK(m["mean_abs"] == Approx(4.0 / 6));
  CHECK(m["top1"] == 0.5);
  CHECK(m["rel_l2"] == Approx(std::sqrt(8.0 / 28)));
  CHECK(m["cosine"] == Approx((14.0 + 10) / 28));
  CHECK(m["kl"] > 0);
  CHECK_THROWS_WITH(eval::compare_tensors(r, Tensor(DType::F32, {3, 2})), Catch::Contains("output shapes differ"));
}

TEST_CASE("summaries carry a 95% confidence interval") {
  std::vector<eval::SampleMetrics> samples;
  for (double v : {0.9, 1.0, 1.1, 1.0}) samples.push_back({{"cosine", v}});
  auto s = eval::summarize(samples).at("cosine");
  CHECK(s.mean == Approx(1.0));
  // sd = 0.0816, t(3) = 3.182, half-width = 3.182 * 0.0816 / 2
  CHECK(s.upper - s.mean == Approx(3.182 * std::sqrt(0.02 / 3) / 2).epsilon(1e-3));
  CHECK(s.worst == 0.9);
}

TEST_CASE("gate expressions parse, and bad ones are usage errors") {
  auto g = eval::parse_gate("kl.upper<=0.01");
  CHECK(g.metric == "kl");
  CHECK(g.stat == "upper");
  CHECK(eval::holds(g, 0.005));
  CHECK_FALSE(eval::holds(g, 0.02));
  CHECK(eval::parse_gate(" cosine >= 0.995 ").threshold == 0.995);
  CHECK_THROWS_WITH(eval::parse_gate("cosine=>1"), Catch::Contains("is not of the form"));
  CHECK_THROWS_WITH(eval::parse_gate("accuracy>=1"), Catch::Contains("unknown metric 'accuracy'"));
}

namespace {
// A copy of the model with every float initializer multiplied by `factor`.
void write_scaled(const std::string& src, const std::string& dst, float factor) {
  Model m = onnx_format::read_onnx(src);
  for (auto& init : m.graph.initializers)
    if (init.tensor.dtype() == DType::F32 && init.tensor.rank() >= 2)
      for (int64_t i = 0; i < init.tensor.numel(); ++i) init.tensor.mutable_data<float>()[i] *= factor;
  onnx_format::write_onnx(m, dst);
}
}  // namespace

TEST_CASE("eval gates: pass (exit 0), fail (exit 1, named), bad expression (exit 2)") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  test::TempDir tmp;
  const std::string model = (*dir / "embedding_model.onnx").string();
  write_scaled(model, tmp.file("same.onnx"), 1.0f);
  write_scaled(model, tmp.file("off.onnx"), 1.02f);

  auto pass = test::run_slmopt("eval --reference " + model + " --candidate " + tmp.file("same.onnx") +
                               " --random 3 --gate 'cosine>=0.9999' --gate 'rel_l2.upper<=1e-6' --report " +
                               tmp.file("r.json") + " --junit " + tmp.file("j.xml"));
  CHECK(pass.exit_code == 0);
  CHECK_THAT(pass.out, Catch::Contains("PASS"));
  auto report = nlohmann::json::parse(test::read_bytes(tmp.file("r.json")));
  CHECK(report["passed"] == true);
  CHECK(report["samples"] == 3);
  CHECK_THAT(test::read_bytes(tmp.file("j.xml")), Catch::Contains("failures=\"0\""));

  auto fail = test::run_slmopt("eval --reference " + model + " --candidate " + tmp.file("off.onnx") +
                               " --random 3 --gate 'cosine>=0.5' --gate 'rel_l2<=1e-4' --junit " + tmp.file("j.xml"));
  CHECK(fail.exit_code == 1);
  CHECK_THAT(fail.err, Catch::Contains("slmopt: gate failed: rel_l2<=1e-4 (rel_l2.mean = "));
  CHECK_THAT(fail.err, Catch::Contains("on output 'conv2d_19'"));
  CHECK_THAT(test::read_bytes(tmp.file("j.xml")), Catch::Contains("failures=\"1\""));

  auto bad = test::run_slmopt("eval --reference " + model + " --candidate " + model + " --random 1 --gate 'cosine=>1'");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("gate 'cosine=>1' is not of the form"));
}

TEST_CASE("run writes outputs as .npy and reports peak activation memory") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  test::TempDir tmp;
  const std::string model = (*dir / "alexa_v0.1.onnx").string();
  Tensor input = test::random_tensor(DType::F32, {1, 16, 96}, 3);
  for (int64_t i = 0; i < input.numel(); ++i) input.mutable_data<float>()[i] = static_cast<float>(i % 17) / 17.0f;
  calib::write_npy(tmp.file("in.npy"), input);
  auto r = test::run_slmopt("run --json " + model + " --input " + tmp.file("in.npy") + " -o " + tmp.file("out"));
  REQUIRE(r.exit_code == 0);
  auto doc = nlohmann::json::parse(r.out);
  CHECK(doc["peak_activation_bytes"].get<uint64_t>() > 0);
  Tensor out = calib::read_npy(doc["outputs"][0]["file"].get<std::string>());
  CHECK(out.shape() == std::vector<int64_t>{1, 1});
  const float p = out.data<float>()[0];
  CHECK((p >= 0 && p <= 1));  // the classifier ends in a sigmoid
}

TEST_CASE("the 2-D im2col fast path matches the N-d reference") {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  struct Case {
    std::vector<int64_t> in, kernel, strides, dilations, pad_begin, pad_end;
  };
  const Case cases[] = {
      {{7, 9}, {3, 1}, {1, 1}, {1, 1}, {1, 0}, {1, 0}},
      {{76, 32}, {1, 3}, {1, 1}, {1, 1}, {0, 1}, {0, 1}},
      {{10, 11}, {3, 3}, {2, 3}, {1, 2}, {2, 1}, {0, 3}},
      {{5, 5}, {5, 5}, {1, 1}, {1, 1}, {4, 4}, {4, 4}},
      // As wide as the input, strides 1: one shifted copy per kernel position.
      {{9, 8}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}},
      {{8, 6}, {3, 3}, {1, 1}, {2, 2}, {2, 2}, {2, 2}},
      {{3, 2}, {1, 5}, {1, 1}, {1, 1}, {0, 2}, {0, 2}},
      {{4, 3}, {3, 3}, {1, 1}, {1, 1}, {0, 1}, {2, 1}},
  };
  for (const auto& cs : cases) {
    runtime::Window w;
    w.kernel = cs.kernel;
    w.strides = cs.strides;
    w.dilations = cs.dilations;
    w.pad_begin = cs.pad_begin;
    w.pad_end = cs.pad_end;
    for (size_t d = 0; d < 2; ++d)
      w.out.push_back((cs.in[d] + cs.pad_begin[d] + cs.pad_end[d] - ((cs.kernel[d] - 1) * cs.dilations[d] + 1)) / cs.strides[d] + 1);
    std::vector<float> plane(static_cast<size_t>(cs.in[0] * cs.in[1]));
    for (auto& v : plane) v = u(rng);
    const size_t n = static_cast<size_t>(w.out[0] * w.out[1]);
    for (int64_t kp = 0; kp < cs.kernel[0] * cs.kernel[1]; ++kp) {
      std::vector<float> fast(n, 9.0f), ref(n, -9.0f);
      runtime::im2col_row_2d(plane.data(), cs.in, w, kp, fast.data());
      runtime::im2col_row_reference(plane.data(), cs.in, w, kp, ref.data());
      CHECK(fast == ref);
    }
  }
}

TEST_CASE("eval --per-layer names the layer whose weights were damaged") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  test::TempDir tmp;
  const std::string model = (*dir / "embedding_model.onnx").string();
  Model m = onnx_format::read_onnx(model);
  const std::string weight = "model/conv2d_9/Conv2D_weights_fused_bn";
  std::string damaged_output;
  for (const auto& n : m.graph.nodes)
    if (std::find(n.inputs.begin(), n.inputs.end(), weight) != n.inputs.end()) damaged_output = n.outputs.at(0);
  REQUIRE(!damaged_output.empty());
  for (auto& init : m.graph.initializers)
    if (init.name == weight)
      for (int64_t i = 0; i < init.tensor.numel(); i += 3) init.tensor.mutable_data<float>()[i] *= 1.5f;
  onnx_format::write_onnx(m, tmp.file("damaged.onnx"));
  auto r = test::run_slmopt("eval --json --per-layer --reference " + model + " --candidate " + tmp.file("damaged.onnx") +
                            " --random 2");
  REQUIRE(r.exit_code == 0);
  auto doc = nlohmann::json::parse(r.out);
  CHECK(doc["first_jump"] == damaged_output);
  CHECK(doc["layers"].size() >= 60);
  CHECK(doc["layers"][0]["rel_l2"] == 0);
}

namespace {

// A ZIP archive as numpy writes it, built by hand: members stored or deflated.
struct ZipMember {
  std::string name, data;
  bool deflate = false;
};

std::string le16(uint32_t v) { return {static_cast<char>(v), static_cast<char>(v >> 8)}; }
std::string le32(uint32_t v) { return le16(v & 0xFFFF) + le16(v >> 16); }

std::string make_zip(const std::vector<ZipMember>& members, uint32_t lie_about_size = 0) {
  std::string out, central;
  for (const auto& m : members) {
    std::string payload = m.data;
    if (m.deflate) {
      z_stream zs{};
      deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
      std::string buf(compressBound(static_cast<uLong>(m.data.size())) + 64, '\0');
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(m.data.data()));
      zs.avail_in = static_cast<uInt>(m.data.size());
      zs.next_out = reinterpret_cast<Bytef*>(buf.data());
      zs.avail_out = static_cast<uInt>(buf.size());
      deflate(&zs, Z_FINISH);
      buf.resize(zs.total_out);
      deflateEnd(&zs);
      payload = buf;
    }
    const uint32_t crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(m.data.data()), static_cast<uInt>(m.data.size())));
    const uint32_t usize = lie_about_size ? lie_about_size : static_cast<uint32_t>(m.data.size());
    const uint32_t offset = static_cast<uint32_t>(out.size());
    const std::string method = le16(m.deflate ? 8 : 0);
    out += le32(0x04034b50) + le16(20) + le16(0) + method + le32(0) + le32(crc) + le32(static_cast<uint32_t>(payload.size())) +
           le32(usize) + le16(static_cast<uint32_t>(m.name.size())) + le16(0) + m.name + payload;
    central += le32(0x02014b50) + le16(20) + le16(20) + le16(0) + method + le32(0) + le32(crc) +
               le32(static_cast<uint32_t>(payload.size())) + le32(usize) + le16(static_cast<uint32_t>(m.name.size())) + le16(0) +
               le16(0) + le16(0) + le16(0) + le32(0) + le32(offset) + m.name;
  }
  const uint32_t cd_offset = static_cast<uint32_t>(out.size());
  out += central;
  out += le32(0x06054b50) + le16(0) + le16(0) + le16(static_cast<uint32_t>(members.size())) +
         le16(static_cast<uint32_t>(members.size())) + le32(static_cast<uint32_t>(central.size())) + le32(cd_offset) + le16(0);
  return out;
}

std::string npz_error(const test::TempDir& tmp, const std::string& bytes) {
  test::write_bytes(tmp.file("x.npz"), bytes);
  try {
    calib::read_npz(tmp.file("x.npz"));
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE(".npz archives, stored and deflated, and hostile ones") {
  test::TempDir tmp;
  Tensor a = test::random_tensor(DType::F32, {2, 3}, 4), b = test::random_tensor(DType::I64, {5}, 5);
  calib::write_npy(tmp.file("a.npy"), a);
  calib::write_npy(tmp.file("b.npy"), b);
  const std::string na = test::read_bytes(tmp.file("a.npy")), nb = test::read_bytes(tmp.file("b.npy"));
  for (bool deflate : {false, true}) {
    test::write_bytes(tmp.file("s.npz"), make_zip({{"a.npy", na, deflate}, {"b.npy", nb, deflate}}));
    auto arrays = calib::read_npz(tmp.file("s.npz"));
    REQUIRE(arrays.size() == 2);
    CHECK(arrays.at("a").bit_equal(a));
    CHECK(arrays.at("b").bit_equal(b));
  }
  const std::string f = tmp.file("x.npz") + ": ";
  CHECK(npz_error(tmp, "PK") == f + "too short for a ZIP archive");
  CHECK(npz_error(tmp, std::string(100, 'x')) == f + "no ZIP end-of-central-directory record (not an .npz file?)");
  // A zip bomb: 4 GB declared from a few bytes, more than deflate can
  // produce; refused before anything is allocated.
  CHECK_THAT(npz_error(tmp, make_zip({{"a.npy", std::string(1000, '\0'), true}}, 0xF0000000u)),
             Catch::StartsWith(f + "member 'a.npy' declares 4026531840 bytes from ") &&
                 Catch::EndsWith(" compressed ones, more than its method can produce"));
  {
    // An honest member over the memory limit: refused before inflating.
    const std::string big(3 << 20, '\0');
    const std::string archive = make_zip({{"a.npy", big, true}});
    set_memory_limit(1 << 20);
    const std::string error = npz_error(tmp, archive);
    set_memory_limit(0);
    CHECK_THAT(error, Catch::StartsWith(f + "member 'a.npy' needs 3145728 bytes (3.00 MiB)") &&
                          Catch::Contains("over the memory limit of 1.00 MiB (--memory-limit or SLMOPT_MEMORY_LIMIT raise it)"));
  }
  // A member that inflates to more than it declares.
  CHECK(npz_error(tmp, make_zip({{"a.npy", std::string(1000, '\0'), true}}, 10)) ==
        f + "member 'a.npy' does not inflate to its declared 10 bytes");
  std::string corrupt = make_zip({{"a.npy", na, false}});
  corrupt[40] ^= 0x55;  // flip a data byte: the CRC must catch it
  CHECK(npz_error(tmp, corrupt) == f + "member 'a.npy' fails its CRC-32 check");
  std::string zip = make_zip({{"a.npy", na, false}});
  CHECK_THAT(npz_error(tmp, zip.substr(0, 60) + zip.substr(zip.size() - 22)), Catch::Contains("outside the file"));
  CHECK(npz_error(tmp, make_zip({{"a.npy", "garbage", false}})) == f + "member 'a.npy': not a .npy file (bad magic)");
}
