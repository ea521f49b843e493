// The flat blob: round trips (tensors, graph and outputs bit for bit, weights
// mapped in place), determinism, tamper and truncation refusal, the C99 reader
// against the C++ writer, golden vectors, OTA packages and the pack/verify CLI.
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <bit>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <algorithm>
#include <set>
#include <sstream>

#include "blob/blob_io.hpp"
#include "blob/crc32c.hpp"
#include "blob/slmblob.h"
#include "common/sha256.hpp"
#include "core/atomic_file.hpp"
#include "core/quant_tensor.hpp"
#include "core/rules.hpp"
#include "model_io.hpp"
#include "onnx/onnx_io.hpp"
#include "ota/ota_package.hpp"
#include "passes/quantize.hpp"
#include "quant/quantize_weight.hpp"
#include "quant/scheme_families.hpp"
#include "quant/sparse.hpp"
#include "quant/spec.hpp"
#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;

namespace {

Model quantize_mixed(const Model& m) {
  passes::QuantizeConfig c;
  // Every scheme family in one model: integer (one- and two-level), lookup
  // table, ternary, binary.
  c.rules = parse_rule_shorthand("*conv2d_1/*=t2,*conv2d_2/*=b1,*conv2d_3/*=q4n,*conv2d_4/*=q8,*conv2d_5/*=q3,*=q4", "bits",
                                 "scheme");
  passes::QuantizeReport report;
  return passes::quantize_model(m, c, report);
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  const std::string s = test::read_bytes(path);
  return {s.begin(), s.end()};
}

void write_vector(const std::string& path, const std::vector<uint8_t>& bytes) {
  test::write_bytes(path, std::string(bytes.begin(), bytes.end()));
}

// Initializers equal in name, shape, type and every stored byte.
void check_same_weights(const Model& a, const Model& b) {
  REQUIRE(a.graph.initializers.size() == b.graph.initializers.size());
  for (size_t i = 0; i < a.graph.initializers.size(); ++i) {
    const auto& x = a.graph.initializers[i];
    const auto& y = b.graph.initializers[i];
    INFO(x.name);
    CHECK(x.name == y.name);
    CHECK(x.tensor.shape() == y.tensor.shape());
    CHECK(x.tensor.dtype() == y.tensor.dtype());
    CHECK(x.tensor.is_quantized() == y.tensor.is_quantized());
    if (x.tensor.is_quantized()) {
      CHECK(*x.tensor.quant() == *y.tensor.quant());
    } else {
      REQUIRE(x.tensor.nbytes() == y.tensor.nbytes());
      CHECK(std::memcmp(x.tensor.bytes(), y.tensor.bytes(), x.tensor.nbytes()) == 0);
    }
  }
}

// Outputs of both models on the same inputs, required identical bit for bit.
void check_same_outputs(const Model& a, const Model& b, const Tensor& x) {
  CHECK(std::memcmp(test::run1(a, x).data<float>(), test::run1(b, x).data<float>(), test::run1(a, x).nbytes()) == 0);
}

// One golden sample for small_model()'s input and output (values need not
// match the model: these tests only store and read them).
blob::GoldenVectors one_golden_sample() {
  blob::GoldenVectors g;
  g.input_names = {"x"};
  g.output_names = {"y"};
  g.inputs = {{test::gaussian_tensor({2, 64}, 1)}};
  g.outputs = {{test::gaussian_tensor({2, 64}, 2)}};
  return g;
}

// A small model of every element type a blob stores plainly, plus a graph.
Model small_model() {
  Model m = test::single_node_model("MatMul", test::gaussian_tensor({64, 64}, 1), {2, 64});
  m.graph.initializers[0].doc = "the weight";
  m.graph.initializers.push_back({"b", test::random_tensor(DType::F16, {64}, 2), ""});
  m.graph.initializers.push_back({"ids", test::random_tensor(DType::I64, {3}, 3), ""});
  m.graph.initializers.push_back({"flags", test::random_tensor(DType::U8, {5}, 4), ""});
  m.graph.initializers.push_back({"empty", Tensor::from_values<float>(DType::F32, {0, 4}, {}), ""});
  return m;
}

struct Key {
  std::string private_pem, public_pem;
};

// A fresh Ed25519 key pair as PEM files.
Key make_key(const test::TempDir& tmp, const std::string& name) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  REQUIRE(key);
  Key k{tmp.file(name + ".pem"), tmp.file(name + ".pub.pem")};
  FILE* f = std::fopen(k.private_pem.c_str(), "wb");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  f = std::fopen(k.public_pem.c_str(), "wb");
  PEM_write_PUBKEY(f, key);
  std::fclose(f);
  EVP_PKEY_free(key);
  return k;
}

// mode: "" (the tensor listing), "golden", "sparse" or "rows" (read_blob.c says what each prints).
std::string run_c_reader(const std::string& blob, const std::string& mode = "") {
  const std::string cmd = std::string(SLMOPT_C_READER) + " '" + blob + "' " + mode;
  std::unique_ptr<FILE, decltype(&pclose)> pipe(popen(cmd.c_str(), "r"), &pclose);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe.get())) > 0) out.append(buf, n);
  return out;
}

std::string crc_hex(const void* data, size_t size) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", slmblob_crc32c(0, data, size));
  return buf;
}

// What read_blob.c prints for a model, computed from the C++ side.
std::string expected_c_listing(const Model& m) {
  std::string s;
  for (const auto& init : m.graph.initializers) {
    const Tensor& t = init.tensor;
    const QuantTensor* q = t.quant();
    s += init.name + " " + (q ? q->scheme : "-") + " " + std::to_string(traits(t.dtype()).onnx_code) + " [";
    for (size_t i = 0; i < t.shape().size(); ++i) s += (i ? "," : "") + std::to_string(t.shape()[i]);
    s += "]";
    auto part = [&](const std::string& name, int bits, int64_t count, const void* data, size_t size) {
      s += " " + name + ":" + std::to_string(bits) + ":" + std::to_string(count) + ":" + std::to_string(size) + ":" +
           crc_hex(data, size);
    };
    if (q)
      for (const auto& p : q->parts) part(p.name, p.bits, p.count, p.bytes.data(), p.bytes.size());
    else
      part("data", 8 * dtype_size(t.dtype()), t.numel(), t.bytes(), t.nbytes());
    s += "\n";
  }
  return s;
}

}  // namespace

TEST_CASE("CRC-32C matches its standard check value and a bitwise reference") {
  CHECK(slmblob_crc32c(0, "123456789", 9) == 0xE3069283u);
  const auto data = test::gaussian_values(1000, 5);
  uint32_t crc = ~0u;
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  for (size_t i = 0; i < data.size() * 4; ++i) {
    crc ^= p[i];
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  CHECK(slmblob_crc32c(0, data.data(), data.size() * 4) == ~crc);
  // The hardware path agrees with the table at every length and misalignment.
  for (size_t offset = 0; offset < 9; ++offset)
    for (size_t n : {0, 1, 7, 8, 9, 63, 64, 65, 1000})
      CHECK(slmopt_crc32c(0, p + offset, n) == slmblob_crc32c(0, p + offset, n));
}

TEST_CASE("a blob round-trips every tensor type and the graph, weights mapped in place") {
  test::TempDir tmp;
  const Model m = small_model();
  for (uint32_t align : {8u, 64u, 4096u}) {
    blob::BlobOptions o;
    o.alignment = align;
    o.model_name = "small";
    const auto bytes = blob::build_blob(m, o);
    write_vector(tmp.file("m.bin"), bytes);
    const Model back = blob::read_blob(tmp.file("m.bin"));
    check_same_weights(m, back);
    CHECK(back.graph.initializers[0].doc == "the weight");
    CHECK(back.graph.nodes.size() == 1);
    CHECK(back.graph.initializers[0].tensor.is_mapped());
    CHECK(reinterpret_cast<uintptr_t>(back.graph.initializers[0].tensor.bytes()) % align == 0);
    const Tensor x = test::gaussian_tensor({2, 64}, 9);
    check_same_outputs(m, back, x);
  }
}

TEST_CASE("quantized real model: blob outputs equal the model before packing, bit for bit") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  test::TempDir tmp;
  const Model f = onnx_format::read_onnx((*dir / "embedding_model.onnx").string());
  const Model q = quantize_mixed(f);
  std::set<std::string> schemes;
  for (const auto& init : q.graph.initializers)
    if (init.tensor.is_quantized()) schemes.insert(init.tensor.quant()->scheme);
  CHECK(schemes.size() >= 4);
  const Tensor x = test::random_tensor(DType::F32, {1, 76, 32, 1}, 3);
  for (const Model* model : {&f, &q}) {
    write_vector(tmp.file("m.bin"), blob::build_blob(*model, {}));
    const Model back = load_model(tmp.file("m.bin"));  // found by its magic
    check_same_weights(*model, back);
    check_same_outputs(*model, back, x);
    for (const auto& init : back.graph.initializers)
      if (init.tensor.is_quantized())
        for (const auto& p : init.tensor.quant()->parts) CHECK(p.bytes.is_view());
  }
  // The C99 reader sees the same tensors and bytes as the C++ writer wrote.
  CHECK(run_c_reader(tmp.file("m.bin")) == expected_c_listing(q));
}

TEST_CASE("the C99 reader reads every tensor of the stories260K weights") {
  test::TempDir tmp;
  const Model m = load_model(test::test_data("stories260K/model.safetensors"));
  blob::BlobOptions o;
  o.alignment = 256;
  write_vector(tmp.file("s.bin"), blob::build_blob(m, o));
  const std::string listing = run_c_reader(tmp.file("s.bin"));
  CHECK(listing == expected_c_listing(m));
  // 47 weights and the graph's constants (shapes, axes, rotary frequencies).
  CHECK(std::count(listing.begin(), listing.end(), '\n') == static_cast<std::ptrdiff_t>(m.graph.initializers.size()));
  CHECK(m.graph.initializers.size() > 47);
}

namespace {

// A weight pruned in a pattern (every third value, all of row 2) as the
// sparse `float` scheme with `bits`-bit values.
Tensor sparse_float_weight(const std::vector<int64_t>& shape, quant::InputAxis axis, int bits) {
  Tensor w = test::gaussian_tensor(shape, 21);
  float* v = w.mutable_data<float>();
  for (int64_t i = 0; i < w.numel(); ++i)
    if (i % 3 == 0) v[i] = 0.0f;
  int64_t rows = 0, cols = 0, kept = 0;
  std::vector<float> m = quant::weight_rows(w, axis, rows, cols);
  std::fill(m.begin() + 2 * cols, m.begin() + 3 * cols, 0.0f);
  QuantParams p;
  p.bits = bits;
  const auto mask = quant::nonzero_mask(m.data(), rows * cols, kept);
  const Tensor dense = quant::quantize_weight(w, axis, quant::kFloatScheme, p, {});
  // Row 2's values are zeroed through the mask alone: the walk must skip them.
  return quant::with_sparse_mask(dense, mask);
}

// What read_blob.c prints in its sparse mode, from the weight as the C++ side
// sees it: rows are output channels, y = W x summed over stored weights in order.
std::string expected_sparse_line(const std::string& name, const Tensor& t) {
  const QuantTensor& q = *t.quant();
  const Tensor dense = quant::dequantize(t);
  int64_t rows = 0, cols = 0;
  const std::vector<float> m = quant::weight_rows(dense, q.transposed ? quant::InputAxis::First : quant::InputAxis::Rest, rows, cols);
  const uint8_t* mask = q.parts.back().bytes.data();
  auto stored = [&](int64_t i) { return (mask[i / 8] >> (i % 8)) & 1; };
  auto codes_before = [&](int64_t row) {
    int64_t n = 0;
    for (int64_t i = 0; i < row * cols; ++i) n += stored(i);
    return n;
  };
  std::string s = name + " rows " + std::to_string(rows) + " cols " + std::to_string(cols) + " row1 " +
                  std::to_string(codes_before(1)) + " last " + std::to_string(codes_before(rows - 1));
  for (int64_t r = 0; r < rows; ++r) {
    float sum = 0.0f;
    for (int64_t c = 0; c < cols; ++c)
      if (stored(r * cols + c)) sum += m[static_cast<size_t>(r * cols + c)] * (static_cast<float>(c % 7 - 3) / 4.0f);
    char hex[16];
    std::snprintf(hex, sizeof hex, " %08x", std::bit_cast<uint32_t>(sum));
    s += hex;
  }
  return s + "\n";
}

}  // namespace

TEST_CASE("the C99 reader walks sparse float weights in place: W x as the dense product, and short codes are refused") {
  test::TempDir tmp;
  // A MatMul weight [K, N] (rows are its N columns) in f32 and a Gemm-style
  // [N, K] one in f16; 67 inputs so rows straddle mask bytes.
  Model m = test::single_node_model("MatMul", sparse_float_weight({67, 40}, quant::InputAxis::First, 32), {2, 67});
  m.graph.initializers.push_back({"w16", sparse_float_weight({30, 67}, quant::InputAxis::Rest, 16), ""});
  REQUIRE(quant::is_sparse(*m.graph.initializers[0].tensor.quant()));
  REQUIRE(m.graph.initializers[1].tensor.quant()->parts[0].bits == 16);
  const auto bytes = blob::build_blob(m, {});
  write_vector(tmp.file("s.bin"), bytes);
  std::string expected;
  for (const auto& init : m.graph.initializers) expected += expected_sparse_line(init.name, init.tensor);
  CHECK(run_c_reader(tmp.file("s.bin"), "sparse") == expected);
  // The walk found row 2 empty and every third value gone: not a dense product.
  CHECK(expected.find(" 00000000") != std::string::npos);

  // The codes part one value short, every checksum resealed: refused at open,
  // before a walk over the mask could read past the codes.
  std::vector<uint8_t> bad = bytes;
  auto u32 = [&](size_t at) { uint32_t v; std::memcpy(&v, &bad[at], 4); return v; };
  auto u64 = [&](size_t at) { uint64_t v; std::memcpy(&v, &bad[at], 8); return v; };
  const uint32_t sections = u32(28);
  for (uint32_t k = 0; k < sections; ++k) {
    const size_t entry = 64 + 32 * k;
    if (u32(entry) != SLMBLOB_SECTION_TENSORS) continue;
    const size_t table = u64(entry + 8), length = u64(entry + 16);
    const uint32_t tensors = u32(table), first_part = u32(table + 16 + 28);  // tensor 0's first part: its codes
    const size_t part = table + 16 + 112 * size_t{tensors} + 40 * size_t{first_part};
    const uint64_t count = u64(part + 16) - 1, size = u64(part + 32) - 4;
    std::memcpy(&bad[part + 16], &count, 8);
    std::memcpy(&bad[part + 32], &size, 8);
    const uint32_t crc = slmblob_crc32c(0, &bad[table], length);
    std::memcpy(&bad[entry + 4], &crc, 4);
  }
  const uint32_t table_crc = slmblob_crc32c(0, &bad[64], 32 * size_t{sections});
  std::memcpy(&bad[48], &table_crc, 4);
  const uint32_t header_crc = slmblob_crc32c(0, bad.data(), 60);
  std::memcpy(&bad[60], &header_crc, 4);
  write_vector(tmp.file("bad.bin"), bad);
  CHECK(run_c_reader(tmp.file("bad.bin"), "sparse") == "error malformed tensor table section 3\n");
  CHECK_THROWS(blob::read_blob(tmp.file("bad.bin")));
}

TEST_CASE("the C99 reader dequantizes every scheme row by row as the runtime does, sparse tensors too") {
  test::TempDir tmp;
  // Every int layout: groups that do not divide the row (67 columns), per
  // row, per tensor, asymmetric, f32 scales, two levels (k-quant style, both
  // signs), 2-8 bits; the table schemes with one and two levels, binary and
  // ternary, trellis codes, Huffman-coded steps; a MatMul weight ([K, N]) and a Gemm one ([N, K]).
  const std::vector<std::string> specs = {"q4",        "q8",         "int4-g32-asym", "int3-g16-asym-k6", "int8-tensor",
                                          "int2-ch-asym", "int5-g16-f32", "int6-g8-k4x32", "nf4",           "nf3-g16-k6",
                                          "lut4",      "lut3-ch-f32", "binary-g16",    "ternary",          "q4n",
                                          "tcq4-ch",   "tcq3-ch-f32", "tcq2-ch",       "ec4-ch",           "ec1-ch",
                                          "ec8-ch"};
  Model m = test::single_node_model("MatMul", test::gaussian_tensor({67, 40}, 1), {2, 67});
  m.graph.initializers.clear();
  for (size_t i = 0; i < specs.size(); ++i) {
    const quant::QuantSpec spec = quant::parse_spec(specs[i]);
    const auto axis = i % 2 ? quant::InputAxis::Rest : quant::InputAxis::First;
    const Tensor w = test::gaussian_tensor(i % 2 ? std::vector<int64_t>{30, 67} : std::vector<int64_t>{67, 40}, 30 + uint32_t(i));
    m.graph.initializers.push_back({"w_" + specs[i], quant::quantize_weight(w, axis, *spec.scheme, spec.params, {}), ""});
  }
  // Sparse: q4 and nf4 codes and f16 values behind a mask.
  for (const char* name : {"q4", "nf4"}) {
    Tensor w = test::gaussian_tensor({30, 67}, 50);
    for (int64_t i = 0; i < w.numel(); i += 3) w.mutable_data<float>()[i] = 0.0f;
    int64_t rows = 0, cols = 0, kept = 0;
    const std::vector<float> rm = quant::weight_rows(w, quant::InputAxis::Rest, rows, cols);
    const auto mask = quant::nonzero_mask(rm.data(), rows * cols, kept);
    const quant::QuantSpec spec = quant::parse_spec(name);
    m.graph.initializers.push_back({std::string("w_sparse_") + name,
                                    quant::with_sparse_mask(quant::quantize_weight(w, quant::InputAxis::Rest, *spec.scheme, spec.params, {}), mask),
                                    ""});
  }
  m.graph.initializers.push_back({"w_sparse_f16", sparse_float_weight({67, 40}, quant::InputAxis::First, 16), ""});
  REQUIRE(quant::is_sparse(*m.graph.initializers[specs.size()].tensor.quant()));
  write_vector(tmp.file("q.bin"), blob::build_blob(m, {}));

  std::string expected;
  for (const auto& init : m.graph.initializers) {
    const QuantTensor& q = *init.tensor.quant();
    std::vector<float> rows(static_cast<size_t>(q.rows * q.cols));
    quant::dequantize_rows(q, 0, q.rows, rows.data());
    char crc[16];
    std::snprintf(crc, sizeof crc, " %08x\n", slmblob_crc32c(0, rows.data(), rows.size() * sizeof(float)));
    expected += init.name + crc;
  }
  CHECK(run_c_reader(tmp.file("q.bin"), "rows") == expected);
}

TEST_CASE("packing is deterministic") {
  const Model m = small_model();
  blob::BlobOptions o;
  o.model_name = "m";
  CHECK(blob::build_blob(m, o) == blob::build_blob(m, o));
  test::TempDir tmp;
  write_vector(tmp.file("a.bin"), blob::build_blob(m, o));
  const Model back = blob::read_blob(tmp.file("a.bin"));
  CHECK(blob::build_blob(back, o) == blob::build_blob(m, o));  // re-packing a loaded blob gives the same bytes
}

TEST_CASE("a blob streams: write_blob hands over the weights in place, its bytes are build_blob's, its hash the trailer") {
  const Model m = load_model(test::test_data("stories260K/model.safetensors"));
  blob::BlobOptions o;
  o.alignment = 4096;  // zero runs longer than one buffer between parts
  std::set<const uint8_t*> weights;
  for (const auto& init : m.graph.initializers) weights.insert(init.tensor.bytes());
  std::vector<uint8_t> streamed;
  size_t chunks = 0, in_place = 0;
  bool only_weights_or_zeros = true;
  const Sha256 digest = blob::write_blob(m, o, [&](const uint8_t* data, uint64_t size) {
    if (chunks++ > 0) {
      const bool zeros = size <= 4096 && std::all_of(data, data + size, [](uint8_t b) { return b == 0; });
      const bool part = weights.count(data) > 0;
      in_place += part;
      only_weights_or_zeros = only_weights_or_zeros && (zeros || part || size == 32);
    }
    streamed.insert(streamed.end(), data, data + size);
  });
  const auto built = blob::build_blob(m, o);
  CHECK(streamed == built);
  CHECK(blob::blob_size(m, o) == built.size());
  CHECK(std::equal(digest.begin(), digest.end(), built.end() - 32));
  CHECK(digest == sha256(built.data(), built.size() - 32));
  // After the tables, every piece is a weight from the model's own memory, zeros or the trailer.
  CHECK(only_weights_or_zeros);
  CHECK(in_place >= 47);
}

TEST_CASE("flipping any byte of a blob makes the loader refuse it") {
  test::TempDir tmp;
  blob::BlobOptions o;
  o.alignment = 128;
  o.golden = one_golden_sample();
  const auto good = blob::build_blob(small_model(), o);
  write_vector(tmp.file("good.bin"), good);
  REQUIRE_NOTHROW(blob::BlobFile(tmp.file("good.bin")));
  // Every byte of the header, table and trailer, and a sample from each section and gap.
  std::vector<size_t> positions;
  for (size_t i = 0; i < 64 + 6 * 32; ++i) positions.push_back(i);
  for (size_t i = good.size() - 40; i < good.size(); ++i) positions.push_back(i);
  for (size_t i = 256; i < good.size() - 40; i += 97) positions.push_back(i);
  size_t refused = 0, c_refused = 0;
  for (size_t pos : positions) {
    auto bad = good;
    bad[pos] ^= 0x20;
    write_vector(tmp.file("bad.bin"), bad);
    try {
      blob::BlobFile f(tmp.file("bad.bin"));
      FAIL_CHECK("byte " << pos << " flipped, the blob still loads");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::BadInput);
      CHECK_THAT(e.what(), Catch::Contains("bad.bin"));
      ++refused;
    }
    slmblob b;
    // The C reader checks everything but the SHA-256 trailer.
    if (pos < good.size() - SLMBLOB_TRAILER_SIZE && slmblob_open(&b, bad.data(), bad.size(), 0) != SLMBLOB_OK) ++c_refused;
  }
  CHECK(refused == positions.size());
  CHECK(c_refused == positions.size() - SLMBLOB_TRAILER_SIZE);
}

TEST_CASE("a truncated blob is a clear error, at every length") {
  test::TempDir tmp;
  const auto good = blob::build_blob(small_model(), {});
  for (size_t n = 0; n < good.size(); n += (n < 300 ? 7 : 211)) {
    write_vector(tmp.file("t.bin"), std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(n)));
    if (n >= 8) {
      CHECK_THROWS_AS(blob::BlobFile(tmp.file("t.bin")), Error);
    }
  }
  write_vector(tmp.file("t.bin"), std::vector<uint8_t>(good.begin(), good.end() - 1));
  CHECK_THROWS_WITH(blob::BlobFile(tmp.file("t.bin")), Catch::Contains("truncated"));
  // Flash padding after the blob is ignored.
  auto padded = good;
  padded.resize(good.size() + 4000, 0xFF);
  write_vector(tmp.file("p.bin"), padded);
  CHECK_NOTHROW(blob::BlobFile(tmp.file("p.bin")));
}

TEST_CASE("golden vectors are stored, read by both readers, and checked by verify --run") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  test::TempDir tmp;
  const std::string alexa = (*dir / "alexa_v0.1.onnx").string();
  auto r = test::run_slmopt("pack '" + alexa + "' -o '" + tmp.file("a.bin") + "' --golden-random 3 --golden-seed 4 -q");
  REQUIRE(r.exit_code == 0);
  const blob::BlobFile f(tmp.file("a.bin"));
  const auto g = f.golden();
  REQUIRE(g);
  CHECK(g->inputs.size() == 3);
  const Model original = onnx_format::read_onnx(alexa);
  CHECK(std::memcmp(test::run1(original, g->inputs[1][0]).data<float>(), g->outputs[1][0].data<float>(),
                    g->outputs[1][0].nbytes()) == 0);
  const std::string c = run_c_reader(tmp.file("a.bin"), "golden");
  CHECK(c.rfind("golden 3 1 1\n", 0) == 0);
  CHECK(std::count(c.begin(), c.end(), '\n') == 7);
  r = test::run_slmopt("verify '" + tmp.file("a.bin") + "' --run --json");
  CHECK(r.exit_code == 0);
  CHECK(nlohmann::json::parse(r.out)["golden"]["mismatches"] == 0);

  // Outputs that differ from what the blob computes fail the check with exit 1.
  blob::BlobOptions o;
  o.golden = *g;
  o.golden->outputs[2][0] = test::gaussian_tensor(g->outputs[2][0].shape(), 8);
  o.golden->atol = 1e-6f;
  o.golden->rtol = 0;
  write_vector(tmp.file("wrong.bin"), blob::build_blob(original, o));
  r = test::run_slmopt("verify '" + tmp.file("wrong.bin") + "' --run");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("sample 2 output"));
}

TEST_CASE("OTA packages: exact blob bytes back, signatures checked, any change refused") {
  test::TempDir tmp;
  const auto blob_bytes = blob::build_blob(small_model(), {});
  const Key key = make_key(tmp, "k"), other = make_key(tmp, "other");
  ota::PackageOptions po;
  po.model_name = "small";
  po.private_key_pem = key.private_pem;
  const auto package = ota::build_package(blob_bytes, po);
  CHECK(package.size() < blob_bytes.size());
  write_vector(tmp.file("m.ota"), package);
  const auto check = ota::check_package(tmp.file("m.ota"), key.public_pem);
  CHECK(check.signature_checked);
  CHECK(check.blob == blob_bytes);
  CHECK_THROWS_WITH(ota::check_package(tmp.file("m.ota"), other.public_pem), Catch::Contains("signature mismatch"));
  CHECK(ota::build_package(blob_bytes, po) == package);  // Ed25519 signatures are deterministic

  for (size_t pos = 0; pos < package.size(); pos += std::max<size_t>(1, package.size() / 200)) {
    auto bad = package;
    bad[pos] ^= 0x01;
    write_vector(tmp.file("bad.ota"), bad);
    CHECK_THROWS_AS(ota::check_package(tmp.file("bad.ota"), key.public_pem), Error);
  }
  po.private_key_pem.clear();
  write_vector(tmp.file("u.ota"), ota::build_package(blob_bytes, po));
  CHECK_FALSE(ota::check_package(tmp.file("u.ota"), "").signed_package);
  CHECK_THROWS_WITH(ota::check_package(tmp.file("u.ota"), key.public_pem), Catch::Contains("not signed"));
  write_vector(tmp.file("short.ota"), std::vector<uint8_t>(package.begin(), package.end() - 10));
  CHECK_THROWS_WITH(ota::check_package(tmp.file("short.ota"), ""), Catch::Contains("truncated"));
}

TEST_CASE("pack CLI: firmware outputs, budget failures that write nothing, verify of packages") {
  test::TempDir tmp;
  const std::string st = test::test_data("stories260K/model.safetensors");
  const Key key = make_key(tmp, "k");
  auto r = test::run_slmopt("pack '" + st + "' -o '" + tmp.file("m.bin") +
                            "' --emit bin,c-header,partition,ld,ota --sign '" + key.private_pem + "' --sector 64KiB --json");
  REQUIRE(r.exit_code == 0);
  const auto doc = nlohmann::json::parse(r.out);
  CHECK(doc["flash_bytes"].get<uint64_t>() % 65536 == 0);
  CHECK(file_bytes(tmp.file("m.bin")).size() == doc["flash_bytes"].get<uint64_t>());
  CHECK_THAT(test::read_bytes(tmp.file("m.partitions.csv")), Catch::Contains("model, data, undefined, , 0x"));
  CHECK_THAT(test::read_bytes(tmp.file("m.h")), Catch::Contains("#define MODEL_SIZE " + std::to_string(doc["blob_bytes"].get<uint64_t>())));
  CHECK_THAT(test::read_bytes(tmp.file("m.ld")), Catch::Contains("KEEP(*(.slmopt_model))"));
  CHECK(nlohmann::json::parse(test::read_bytes(tmp.file("m.manifest.json")))["blob"]["sha256"] == doc["sha256"]);

  r = test::run_slmopt("verify '" + tmp.file("m.ota") + "' --pubkey '" + key.public_pem + "' --extract '" + tmp.file("x.bin") + "'");
  CHECK(r.exit_code == 0);
  auto padded = file_bytes(tmp.file("m.bin"));
  CHECK(file_bytes(tmp.file("x.bin")) == std::vector<uint8_t>(padded.begin(), padded.begin() + doc["blob_bytes"].get<long>()));
  CHECK(test::run_slmopt("verify '" + tmp.file("m.bin") + "'").exit_code == 0);
  padded[1000] ^= 4;
  write_vector(tmp.file("m.bin"), padded);
  r = test::run_slmopt("verify '" + tmp.file("m.bin") + "'");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("m.bin"));

  // Over budget: exit 1, the shortfall named, no file written.
  test::TempDir out;
  r = test::run_slmopt("pack '" + st + "' -o '" + out.file("m.bin") + "' --flash 512KiB");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("the device has 512.00 KiB"));
  CHECK_THAT(r.err, Catch::Contains("over"));
  CHECK(out.entries().empty());
  r = test::run_slmopt("pack '" + st + "' -o '" + tmp.file("r.bin") + "' --emit ld --ld-region FLASH --section .models");
  CHECK(r.exit_code == 0);
  CHECK_THAT(test::read_bytes(tmp.file("r.ld")), Catch::Contains("KEEP(*(.models))") && Catch::Contains("} > FLASH"));
  CHECK(test::read_bytes(tmp.file("r.ld")).find("INSERT") == std::string::npos);
  r = test::run_slmopt("inspect '" + st + "' --flash 512KiB --json");
  CHECK(r.exit_code == 1);
  const uint64_t blob_size = doc["blob_bytes"].get<uint64_t>();
  CHECK(nlohmann::json::parse(r.out)["device"]["flash_bytes"].get<uint64_t>() == (blob_size + 4095) / 4096 * 4096);
  r = test::run_slmopt("pack '" + st + "' -o '" + out.file("m.bin") + "' --flash 4x");
  CHECK(r.exit_code == 2);
}

TEST_CASE("pack CLI: a RAM budget is checked against the planned activation arena") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  test::TempDir tmp;
  const std::string emb = (*dir / "embedding_model.onnx").string();
  auto r = test::run_slmopt("pack '" + emb + "' -o '" + tmp.file("e.bin") + "' --ram 8MiB --json");
  REQUIRE(r.exit_code == 0);
  const uint64_t ram = nlohmann::json::parse(r.out)["ram_bytes"].get<uint64_t>();
  // The arena (444 KiB), the input and the largest im2col scratch (666 KiB).
  const auto run = nlohmann::json::parse(test::run_slmopt("run '" + emb + "' --random 1 --json").out);
  CHECK(ram == run["arena_bytes"].get<uint64_t>() + run["scratch_bytes"].get<uint64_t>() + 76 * 32 * 4);
  r = test::run_slmopt("pack '" + emb + "' -o '" + tmp.file("f.bin") + "' --ram " + std::to_string(ram - 1));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("RAM: needs"));
  CHECK_THAT(r.err, Catch::Contains("1 B over"));
}

namespace {

// Rewrites the CRCs of `blob` (every section, the table, the header) so that a
// mutation inside a section reaches the structural checks behind them.
void reseal(std::vector<uint8_t>& blob) {
  auto get32 = [&](size_t at) { return uint32_t{blob[at]} | uint32_t{blob[at + 1]} << 8 | uint32_t{blob[at + 2]} << 16 | uint32_t{blob[at + 3]} << 24; };
  auto get64 = [&](size_t at) { return uint64_t{get32(at)} | uint64_t{get32(at + 4)} << 32; };
  auto put32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) blob[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
  };
  const uint32_t count = get32(28);
  for (uint32_t s = 0; s < count; ++s) {
    const size_t e = 64 + 32 * size_t{s};
    put32(e + 4, slmblob_crc32c(0, blob.data() + get64(e + 8), get64(e + 16)));
  }
  put32(48, slmblob_crc32c(0, blob.data() + 64, 32 * size_t{count}));
  put32(60, slmblob_crc32c(0, blob.data(), 60));
}

// Reads everything the C reader offers, as firmware would.
void read_everything(const slmblob& b) {
  for (uint32_t i = 0; i < slmblob_tensor_count(&b); ++i) {
    slmblob_tensor t;
    if (slmblob_tensor_at(&b, i, &t) != SLMBLOB_OK) continue;
    volatile size_t sink = std::strlen(t.name) + std::strlen(t.scheme);
    for (uint32_t k = 0; k < t.part_count; ++k) {
      slmblob_part p;
      if (slmblob_tensor_part(&b, &t, k, &p) == SLMBLOB_OK && p.size) sink = sink + p.data[p.size - 1] + std::strlen(p.name);
    }
    (void)sink;
  }
  for (uint32_t s = 0; s < slmblob_golden_samples(&b); ++s)
    for (uint32_t v = 0; v < slmblob_golden_inputs(&b) + slmblob_golden_outputs(&b); ++v) {
      slmblob_value value;
      if (slmblob_golden_value(&b, s, v, &value) == SLMBLOB_OK && value.size)
        CHECK(static_cast<const uint8_t*>(value.data) + value.size <= b.data + b.size);
    }
}

}  // namespace

TEST_CASE("hostile tables behind valid checksums are refused or read within bounds") {
  // Mutations inside the tensor, string and golden sections, resealed with
  // fresh CRCs: the structural checks alone must keep every read in bounds
  // (the ASan build runs this too).
  blob::BlobOptions o;
  o.golden = one_golden_sample();
  const auto good = blob::build_blob(quantize_mixed(small_model()), o);
  slmblob b;
  REQUIRE(slmblob_open(&b, good.data(), good.size(), 0) == SLMBLOB_OK);
  std::mt19937 rng(11);
  size_t refused = 0, opened = 0;
  for (uint32_t kind : {SLMBLOB_SECTION_STRINGS, SLMBLOB_SECTION_TENSORS, SLMBLOB_SECTION_GOLDEN}) {
    const uint8_t* section = nullptr;
    uint64_t size = 0;
    REQUIRE(slmblob_section(&b, kind, &section, &size) == SLMBLOB_OK);
    const size_t start = static_cast<size_t>(section - good.data());
    for (int trial = 0; trial < 400; ++trial) {
      auto bad = good;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        const size_t at = start + rng() % size;
        // Small, large and boundary values: the ones that break bounds checks.
        const uint8_t values[] = {0x00, 0xFF, 0x7F, 0x80, 0x01, static_cast<uint8_t>(rng())};
        bad[at] = values[rng() % 6];
      }
      reseal(bad);
      slmblob m;
      if (slmblob_open(&m, bad.data(), bad.size(), 0) != SLMBLOB_OK) {
        ++refused;
        continue;
      }
      ++opened;
      read_everything(m);
    }
  }
  CHECK(refused > 0);
  WARN(refused << " hostile blobs refused, " << opened << " opened and read within bounds");
}

TEST_CASE("both readers enforce the spec's flags, enumerations and zero fields behind valid checksums") {
  const auto good = blob::build_blob(quantize_mixed(small_model()), blob::BlobOptions{});
  slmblob b;
  REQUIRE(slmblob_open(&b, good.data(), good.size(), 0) == SLMBLOB_OK);
  const uint8_t* tensors = nullptr;
  uint64_t size = 0;
  REQUIRE(slmblob_section(&b, SLMBLOB_SECTION_TENSORS, &tensors, &size) == SLMBLOB_OK);
  const size_t table = static_cast<size_t>(tensors - good.data()) + 16;
  // The first quantized and the first plain entry (a scheme string of non-zero length).
  size_t quantized = 0, plain = 0;
  for (uint32_t i = 0; i < slmblob_tensor_count(&b); ++i) {
    const size_t e = table + size_t{i} * SLMBLOB_TENSOR_ENTRY_SIZE;
    const bool has_scheme = good[e + 12] != 0;  // the scheme string's length
    if (has_scheme && !quantized) quantized = e;
    if (!has_scheme && !plain) plain = e;
  }
  REQUIRE(quantized != 0);
  REQUIRE(plain != 0);
  struct Mutation {
    const char* what;
    size_t at;
    uint8_t value;
    slmblob_status expected;
  };
  const Mutation mutations[] = {
      {"a reserved header flag bit", 20, 0x02, SLMBLOB_E_HEADER},
      {"a quantized tensor's element type 129", quantized + 16, 129, SLMBLOB_E_TENSOR_TABLE},
      {"symmetric = 2", quantized + 33, 2, SLMBLOB_E_TENSOR_TABLE},
      {"transposed = 2", quantized + 36, 2, SLMBLOB_E_TENSOR_TABLE},
      {"scales of element type 3", quantized + 34, 3, SLMBLOB_E_TENSOR_TABLE},
      {"a plain tensor's element type 129", plain + 16, 129, SLMBLOB_E_TENSOR_TABLE},
      {"a plain tensor with code bits", plain + 32, 4, SLMBLOB_E_TENSOR_TABLE},
      {"a plain tensor with a group size", plain + 40, 32, SLMBLOB_E_TENSOR_TABLE},
  };
  for (const auto& m : mutations) {
    INFO(m.what);
    auto bad = good;
    bad[m.at] = m.value;
    reseal(bad);
    const Sha256 digest = sha256(bad.data(), bad.size() - SLMBLOB_TRAILER_SIZE);
    std::copy(digest.begin(), digest.end(), bad.end() - SLMBLOB_TRAILER_SIZE);
    slmblob m2;
    CHECK(slmblob_open(&m2, bad.data(), bad.size(), 0) == m.expected);
    CHECK_THROWS_AS(blob::check_blob_bytes(bad.data(), bad.size(), "bad.bin"), Error);
  }
}
