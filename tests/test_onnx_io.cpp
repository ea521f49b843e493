#include <catch2/catch.hpp>

#include <google/protobuf/util/message_differencer.h>
#include <onnx/checker.h>

#include <filesystem>
#include <fstream>

#include "onnx/onnx_io.hpp"
#include "onnx/onnx_tensor.hpp"
#include "onnx_test_models.hpp"
#include "test_util.hpp"

using namespace slmopt;
namespace fs = std::filesystem;
using google::protobuf::util::MessageDifferencer;

namespace {

onnx::ModelProto load_proto(const std::string& path) {
  onnx::ModelProto p;
  std::ifstream f(path, std::ios::binary);
  REQUIRE(p.ParseFromIstream(&f));
  return p;
}

// Rewrites every tensor (typed fields, external data) into the raw_data form our
// writer uses, so two protos can be compared field by field.
void canonicalize(onnx::GraphProto& g, const std::string& base_dir);
void canonicalize(onnx::TensorProto& t, const std::string& base_dir) {
  onnx::TensorProto out;
  onnx_format::encode_tensor_inline(onnx_format::tensor_from_proto(t, base_dir), out);
  out.set_name(t.name());
  if (t.has_doc_string()) out.set_doc_string(t.doc_string());
  t = out;
}
void canonicalize(onnx::GraphProto& g, const std::string& base_dir) {
  for (auto& t : *g.mutable_initializer()) canonicalize(t, base_dir);
  for (auto& n : *g.mutable_node())
    for (auto& a : *n.mutable_attribute()) {
      if (a.has_t()) canonicalize(*a.mutable_t(), base_dir);
      for (auto& t : *a.mutable_tensors()) canonicalize(t, base_dir);
      if (a.has_g()) canonicalize(*a.mutable_g(), base_dir);
      for (auto& sub : *a.mutable_graphs()) canonicalize(sub, base_dir);
    }
}

std::string difference(const onnx::ModelProto& a, const onnx::ModelProto& b) {
  MessageDifferencer diff;
  std::string report;
  // Unset and explicitly-default fields mean the same to ONNX.
  diff.set_message_field_comparison(MessageDifferencer::EQUIVALENT);
  diff.ReportDifferencesToString(&report);
  diff.Compare(a, b);
  return report;
}

std::string ir_bytes(const Model& m) { return onnx_format::model_to_proto(m).SerializeAsString(); }

// Read, write, read again: the IR must be identical, the file ONNX-valid, and
// the written proto equal to the original once tensors share one encoding.
void check_round_trip(const std::string& path, test::TempDir& tmp, bool run_checker) {
  INFO(path);
  Model a = onnx_format::read_onnx(path);
  std::string out = tmp.file("rt.onnx");
  onnx_format::write_onnx(a, out);
  Model b = onnx_format::read_onnx(out);
  REQUIRE(a.graph.initializers.size() == b.graph.initializers.size());
  for (size_t i = 0; i < a.graph.initializers.size(); ++i)
    CHECK(a.graph.initializers[i].tensor.bit_equal(b.graph.initializers[i].tensor));
  CHECK(ir_bytes(a) == ir_bytes(b));

  onnx::ModelProto original = load_proto(path);
  canonicalize(*original.mutable_graph(), fs::path(path).parent_path().string());
  onnx::ModelProto written = load_proto(out);
  CHECK(difference(original, written) == "");
  if (run_checker) CHECK_NOTHROW(onnx::checker::check_model(written));
}

}  // namespace

TEST_CASE("generated model with every dtype, Constant and If round-trips bit for bit") {
  test::TempDir tmp;
  Model m = test::make_every_dtype_model(7);
  onnx_format::write_onnx(m, tmp.file("m.onnx"));
  CHECK_NOTHROW(onnx::checker::check_model(load_proto(tmp.file("m.onnx"))));
  Model back = onnx_format::read_onnx(tmp.file("m.onnx"));
  CHECK(ir_bytes(m) == ir_bytes(back));
  CHECK(back.provenance == m.provenance);
  CHECK(back.metadata == m.metadata);
  REQUIRE(back.graph.inputs[0].shape);
  CHECK((*back.graph.inputs[0].shape)[0].param == "batch");
  const auto* s = back.graph.find_initializer("w_string");
  REQUIRE(s);
  CHECK(s->tensor.strings()[0].find("\xc3\xa9") != std::string::npos);
  // Deterministic: the same model gives the same bytes.
  onnx_format::write_onnx(back, tmp.file("m2.onnx"));
  CHECK(test::read_bytes(tmp.file("m.onnx")) == test::read_bytes(tmp.file("m2.onnx")));
}

TEST_CASE("float8 initializers (ONNX >= 1.14 type codes) survive a round trip") {
  test::TempDir tmp;
  Model m;
  m.opsets = {{"", 19}};
  m.ir_version = 9;
  m.graph.name = "f8";
  m.graph.initializers.push_back({"a", test::random_tensor(DType::F8E4M3FN, {4, 4}, 1), ""});
  m.graph.initializers.push_back({"b", test::random_tensor(DType::F8E5M2, {4, 4}, 2), ""});
  onnx_format::write_onnx(m, tmp.file("f8.onnx"));
  Model back = onnx_format::read_onnx(tmp.file("f8.onnx"));
  CHECK(back.graph.initializers[0].tensor.bit_equal(m.graph.initializers[0].tensor));
  CHECK(back.graph.initializers[1].tensor.bit_equal(m.graph.initializers[1].tensor));
}

TEST_CASE("int4 and uint4 initializers travel packed two a byte, low nibble first") {
  // 5 values (an odd count: the last byte holds one).
  Tensor i4 = Tensor::from_values<int8_t>(DType::I4, {5}, {-8, 7, -1, 0, 3});
  Tensor u4 = Tensor::from_values<uint8_t>(DType::U4, {5}, {15, 0, 1, 9, 4});
  Model m;
  m.opsets = {{"", 21}};
  m.ir_version = 10;
  m.graph.name = "nibbles";
  m.graph.initializers = {{"i", i4, ""}, {"u", u4, ""}};
  const onnx::ModelProto proto = onnx_format::model_to_proto(m);
  CHECK(proto.graph().initializer(0).data_type() == 22);
  CHECK(proto.graph().initializer(0).raw_data() == std::string("\x78\x0F\x03", 3));
  CHECK(proto.graph().initializer(1).data_type() == 21);
  CHECK(proto.graph().initializer(1).raw_data() == std::string("\x0F\x91\x04", 3));
  test::TempDir tmp;
  for (auto external : {onnx_format::ExternalData::Never, onnx_format::ExternalData::Always}) {
    onnx_format::WriteOptions options;
    options.external = external;
    options.external_min_bytes = 0;
    onnx_format::write_onnx(m, tmp.file("n.onnx"), options);
    Model back = onnx_format::read_onnx(tmp.file("n.onnx"));
    CHECK(back.graph.initializers[0].tensor.bit_equal(i4));
    CHECK(back.graph.initializers[1].tensor.bit_equal(u4));
  }
  // int32_data holds one packed byte (two values) per entry.
  onnx::TensorProto p;
  p.set_name("t");
  p.set_data_type(22);
  p.add_dims(3);
  for (int v : {0x78, 0x0F}) p.add_int32_data(v);
  Tensor t = onnx_format::tensor_from_proto(p, ".");
  CHECK(t.dtype() == DType::I4);
  CHECK(std::vector<int8_t>(t.data<int8_t>(), t.data<int8_t>() + 3) == std::vector<int8_t>{-8, 7, -1});
  p.add_int32_data(0);  // one byte too many
  CHECK_THROWS_WITH(onnx_format::tensor_from_proto(p, "."), Catch::Contains("int32_data holds 3 values, shape needs 2"));
  p.clear_int32_data();
  p.set_raw_data(std::string("\x78\x0F\x00", 3));
  CHECK_THROWS_WITH(onnx_format::tensor_from_proto(p, "."), Catch::Contains("raw_data holds 3 bytes"));
}

TEST_CASE("typed data fields decode to the values they hold") {
  auto decode = [](const onnx::TensorProto& p) { return onnx_format::tensor_from_proto(p, "."); };
  onnx::TensorProto p;
  p.set_name("t");
  p.add_dims(3);

  SECTION("float_data") {
    p.set_data_type(onnx::TensorProto::FLOAT);
    for (float v : {1.5f, -2.0f, 0.25f}) p.add_float_data(v);
    Tensor t = decode(p);
    CHECK(t.data<float>()[1] == -2.0f);
  }
  SECTION("float16 and bfloat16 bit patterns in int32_data") {
    p.set_data_type(onnx::TensorProto::FLOAT16);
    for (int v : {0x3C00, 0xC000, 0x7BFF}) p.add_int32_data(v);  // 1, -2, 65504
    Tensor h = decode(p);
    CHECK(h.dtype() == DType::F16);
    CHECK(h.data<uint16_t>()[1] == 0xC000);
    p.set_data_type(onnx::TensorProto::BFLOAT16);
    Tensor b = decode(p);
    CHECK(b.dtype() == DType::BF16);
    CHECK(b.data<uint16_t>()[2] == 0x7BFF);
  }
  SECTION("small integers and bool in int32_data") {
    p.set_data_type(onnx::TensorProto::INT8);
    for (int v : {-128, 0, 127}) p.add_int32_data(v);
    CHECK(decode(p).data<int8_t>()[0] == -128);
    p.set_data_type(onnx::TensorProto::UINT16);
    p.set_int32_data(0, 65535);
    CHECK(decode(p).data<uint16_t>()[0] == 65535);
    p.set_data_type(onnx::TensorProto::BOOL);
    p.set_int32_data(0, 1);
    CHECK(decode(p).data<uint8_t>()[0] == 1);
  }
  SECTION("int64, double, uint64 and string fields") {
    p.set_data_type(onnx::TensorProto::INT64);
    for (int64_t v : {int64_t{1} << 40, int64_t{-1}, int64_t{0}}) p.add_int64_data(v);
    CHECK(decode(p).data<int64_t>()[0] == (int64_t{1} << 40));
    p.clear_int64_data();
    p.set_data_type(onnx::TensorProto::DOUBLE);
    for (double v : {0.1, 0.2, 0.3}) p.add_double_data(v);
    CHECK(decode(p).data<double>()[2] == 0.3);
    p.clear_double_data();
    p.set_data_type(onnx::TensorProto::UINT32);
    for (uint64_t v : {4000000000ull, 1ull, 2ull}) p.add_uint64_data(v);
    CHECK(decode(p).data<uint32_t>()[0] == 4000000000u);
    p.clear_uint64_data();
    p.set_data_type(onnx::TensorProto::STRING);
    for (const char* v : {"a", "", "ccc"}) p.add_string_data(v);
    CHECK(decode(p).strings()[2] == "ccc");
  }
  SECTION("a count that does not match the shape is an error") {
    p.set_data_type(onnx::TensorProto::FLOAT);
    p.add_float_data(1);
    CHECK_THROWS_WITH(decode(p), "tensor 't': float_data holds 1 values, shape needs 3");
  }
}

TEST_CASE("external data: written aligned, read back memory-mapped and bit-equal") {
  test::TempDir tmp;
  Model m = test::make_every_dtype_model(11);
  m.graph.initializers.push_back({"big", test::random_tensor(DType::F32, {300, 7}, 5), ""});
  onnx_format::WriteOptions w;
  w.external = onnx_format::ExternalData::Always;
  w.external_min_bytes = 16;
  onnx_format::write_onnx(m, tmp.file("m.onnx"), w);
  CHECK(tmp.entries() == std::vector<std::string>{"m.onnx", "m.onnx.data"});
  CHECK_NOTHROW(onnx::checker::check_model(tmp.file("m.onnx")));
  auto proto = load_proto(tmp.file("m.onnx"));
  int external = 0;
  for (const auto& t : proto.graph().initializer())
    if (t.data_location() == onnx::TensorProto::EXTERNAL) {
      ++external;
      for (const auto& kv : t.external_data())
        if (kv.key() == "offset") CHECK(std::stoull(kv.value()) % 64 == 0);
    }
  CHECK(external >= 10);
  Model back = onnx_format::read_onnx(tmp.file("m.onnx"));
  const auto* big = back.graph.find_initializer("big");
  REQUIRE(big);
  CHECK(big->tensor.is_mapped());
  CHECK(ir_bytes(back) == ir_bytes(m));
  // And back to a single file.
  onnx_format::WriteOptions inline_opts;
  inline_opts.external = onnx_format::ExternalData::Never;
  onnx_format::write_onnx(back, tmp.file("single.onnx"), inline_opts);
  CHECK(ir_bytes(onnx_format::read_onnx(tmp.file("single.onnx"))) == ir_bytes(m));
}

namespace {

// A one-initializer model whose tensor points at external data as given.
void write_external_ref(const std::string& path, const std::string& location, int64_t offset,
                        int64_t length, int64_t numel = 4) {
  onnx::ModelProto p;
  p.set_ir_version(8);
  p.add_opset_import()->set_version(17);
  auto* t = p.mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(numel);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto add = [&](const char* k, const std::string& v) {
    auto* kv = t->add_external_data();
    kv->set_key(k);
    kv->set_value(v);
  };
  add("location", location);
  if (offset >= 0) add("offset", std::to_string(offset));
  if (length >= 0) add("length", std::to_string(length));
  std::ofstream f(path, std::ios::binary);
  REQUIRE(p.SerializeToOstream(&f));
}

std::string read_error(const std::string& path) {
  try {
    onnx_format::read_onnx(path);
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::BadInput);
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("hostile external data references are refused with a clear error") {
  test::TempDir tmp;
  fs::create_directories(tmp.path() / "model");
  fs::create_directories(tmp.path() / "outside");
  test::write_bytes(tmp.file("outside/secret.bin"), std::string(16, 'x'));
  test::write_bytes(tmp.file("model/w.bin"), std::string(16, '\0'));
  const std::string m = tmp.file("model/m.onnx");

  write_external_ref(m, "w.bin", 0, 16);
  CHECK(onnx_format::read_onnx(m).graph.initializers.at(0).tensor.numel() == 4);

  write_external_ref(m, tmp.file("outside/secret.bin"), 0, 16);
  CHECK_THAT(read_error(m), Catch::Contains("m.onnx: graph '': tensor 'w': external data location") &&
                                Catch::Contains("is an absolute path"));
  write_external_ref(m, "../outside/secret.bin", 0, 16);
  CHECK_THAT(read_error(m), Catch::EndsWith("'../outside/secret.bin' escapes the model's folder"));
  fs::create_symlink(tmp.path() / "outside", tmp.path() / "model/link");
  write_external_ref(m, "link/secret.bin", 0, 16);
  CHECK_THAT(read_error(m), Catch::EndsWith("'link/secret.bin' resolves outside the model's folder"));
  write_external_ref(m, "missing.bin", 0, 16);
  CHECK_THAT(read_error(m), Catch::Contains("external data file 'missing.bin' does not exist"));
  write_external_ref(m, "w.bin", 8, 16);
  CHECK_THAT(read_error(m), Catch::Contains("external data range [8, +16) runs past the end of 'w.bin' (16 bytes)"));
  write_external_ref(m, "w.bin", 0, 12);
  CHECK_THAT(read_error(m), Catch::Contains("external data length 12 does not match shape [4] of f32 (16 bytes)"));
  write_external_ref(m, "w.bin", int64_t{1} << 62, 16);
  CHECK_THAT(read_error(m), Catch::Contains("runs past the end"));
  write_external_ref(m, "w.bin", 0, 16, int64_t{1} << 62);
  CHECK_THAT(read_error(m), Catch::Contains("tensor byte size overflows"));
  write_external_ref(m, "", 0, 16);
  CHECK_THAT(read_error(m), Catch::Contains("external data has an empty location"));
}

TEST_CASE("malformed ONNX files are refused with a clear error") {
  test::TempDir tmp;
  const std::string path = tmp.file("bad.onnx");

  test::write_bytes(path, "");
  CHECK(read_error(path) == path + ": the model has no graph");
  test::write_bytes(path, "\x0a\xff\xff\xff\xff\x0f garbage");
  CHECK(read_error(path) == path + ": not a valid ONNX model (protobuf parse failed)");
  CHECK_THAT(read_error(tmp.file("absent.onnx")), Catch::Contains("absent.onnx: cannot open"));

  // Truncating a valid model anywhere must give an error, never a crash.
  Model m = test::make_every_dtype_model(3);
  onnx_format::write_onnx(m, tmp.file("good.onnx"));
  std::string bytes = test::read_bytes(tmp.file("good.onnx"));
  for (size_t cut = 1; cut < bytes.size(); cut += 37) {
    test::write_bytes(path, bytes.substr(0, cut));
    try {
      onnx_format::read_onnx(path);
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::BadInput);
    }
  }

  onnx::ModelProto p;
  p.set_ir_version(8);
  auto* t = p.mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(2);
  t->set_raw_data(std::string(7, '\0'));
  auto save = [&] {
    std::ofstream f(path, std::ios::binary);
    REQUIRE(p.SerializeToOstream(&f));
  };
  save();
  CHECK_THAT(read_error(path), Catch::Contains("tensor 'w': raw_data holds 7 bytes, shape [2] of f32 needs 8"));
  t->set_dims(0, -3);
  save();
  CHECK_THAT(read_error(path), Catch::Contains("tensor 'w': negative dimension -3"));
  t->set_dims(0, 2);
  t->set_data_type(14);  // complex64
  save();
  CHECK_THAT(read_error(path), Catch::Contains("tensor 'w': unsupported data type 14"));
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->set_raw_data(std::string(8, '\0'));
  *p.mutable_graph()->add_initializer() = *t;
  save();
  CHECK_THAT(read_error(path), Catch::Contains("initializer name 'w' appears twice"));
  p.mutable_graph()->mutable_initializer()->RemoveLast();
  p.add_functions()->set_name("f");
  save();
  CHECK_THAT(read_error(path), Catch::Contains("model-local functions are not supported"));
  p.clear_functions();
  auto* n = p.mutable_graph()->add_node();
  n->set_op_type("Foo");
  n->set_name("n1");
  auto* a = n->add_attribute();
  a->set_name("sp");
  a->set_type(onnx::AttributeProto::SPARSE_TENSOR);
  save();
  CHECK_THAT(read_error(path), Catch::Contains("node 'n1' (Foo): attribute 'sp': attribute type 11 is not supported"));
}

TEST_CASE("models past protobuf's 2 GiB limit go through external data", "[large]") {
  test::TempDir tmp;
  // A file that would need a >2 GiB protobuf message is refused before parsing.
  {
    std::ofstream f(tmp.file("huge.onnx"), std::ios::binary);
    f.seekp((int64_t{2} << 30) + 100);
    f.put('\0');
  }
  CHECK_THAT(read_error(tmp.file("huge.onnx")), Catch::Contains("larger than protobuf's 2 GiB message limit"));
  fs::remove(tmp.file("huge.onnx"));

  Model m;
  m.opsets = {{"", 17}};
  m.graph.name = "large";
  const int64_t n = 200'000'000;  // 800 MB each, 2.4 GB in all
  for (int k = 0; k < 3; ++k) {
    Tensor t(DType::F32, {n});
    uint32_t* p = reinterpret_cast<uint32_t*>(t.mutable_bytes());
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<uint32_t>(i * 2654435761u + static_cast<uint32_t>(k));
    m.graph.initializers.push_back({"w" + std::to_string(k), std::move(t), ""});
  }
  onnx_format::write_onnx(m, tmp.file("large.onnx"));  // Auto: must choose external data
  CHECK(fs::file_size(tmp.file("large.onnx")) < 4096);
  CHECK(fs::file_size(tmp.file("large.onnx.data")) >= 3 * 800'000'000ull);
  Model back = onnx_format::read_onnx(tmp.file("large.onnx"));
  REQUIRE(back.graph.initializers.size() == 3);
  for (int k = 0; k < 3; ++k) {
    CHECK(back.graph.initializers[static_cast<size_t>(k)].tensor.is_mapped());
    CHECK(back.graph.initializers[static_cast<size_t>(k)].tensor.bit_equal(m.graph.initializers[static_cast<size_t>(k)].tensor));
  }
}

TEST_CASE("ONNX conformance models round-trip and stay valid") {
  const fs::path root = "/usr/share/libonnx-testdata/data";
  if (!fs::exists(root)) {
    const char* require = std::getenv("SLMOPT_REQUIRE_TESTDATA");
    if (require && std::string(require) == "1") FAIL("libonnx-testdata is not installed");
    WARN("libonnx-testdata not installed; skipping");
    return;
  }
  test::TempDir tmp;
  int round_tripped = 0, refused = 0, input_files = 0;
  std::map<std::string, int> refusals;
  for (const char* suite : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
    for (const auto& dir : fs::directory_iterator(root / suite)) {
      fs::path model = dir.path() / "model.onnx";
      if (!fs::exists(model)) continue;
      try {
        onnx_format::read_onnx(model.string());
      } catch (const Error& e) {
        // Only features we refuse on purpose may fail, each with a clear message.
        std::string what = e.what();
        bool known = what.find("unsupported data type") != std::string::npos ||
                     what.find("sparse") != std::string::npos ||
                     what.find("model-local functions") != std::string::npos ||
                     what.find("training information") != std::string::npos;
        INFO(what);
        CHECK(known);
        ++refused;
        ++refusals[what.substr(what.find(": ") + 2)];
        continue;
      }
      check_round_trip(model.string(), tmp, /*run_checker=*/true);
      ++round_tripped;
      // Sequence and optional values are stored as other protos; decode tensors only.
      Model ir = onnx_format::read_onnx(model.string());
      bool all_tensors = true;
      for (const auto* list : {&ir.graph.inputs, &ir.graph.outputs})
        for (const auto& v : *list) all_tensors = all_tensors && v.opaque_type.empty();
      if (!all_tensors) continue;
      // The reference inputs and outputs are TensorProtos in every encoding too.
      for (const auto& set : fs::directory_iterator(dir.path())) {
        if (!set.is_directory()) continue;
        for (const auto& pb : fs::directory_iterator(set.path())) {
          onnx::TensorProto t;
          std::ifstream f(pb.path(), std::ios::binary);
          if (!t.ParseFromIstream(&f) || !dtype_from_onnx(t.data_type())) continue;
          CHECK_NOTHROW(onnx_format::tensor_from_proto(t, set.path().string()));
          ++input_files;
        }
      }
    }
  }
  CHECK(round_tripped >= 1000);
  WARN("conformance models: " << round_tripped << " round-tripped, " << refused << " refused, "
                              << input_files << " data files decoded");
}

TEST_CASE("real openWakeWord models round-trip bit for bit") {
  auto dir = test::real_models_dir();
  if (!dir) return;
  test::TempDir tmp;
  int count = 0;
  for (const auto& e : fs::directory_iterator(*dir)) {
    if (e.path().extension() != ".onnx") continue;
    check_round_trip(e.path().string(), tmp, /*run_checker=*/true);
    ++count;
  }
  CHECK(count >= 9);
}
