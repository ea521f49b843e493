#include <catch2/catch.hpp>

#include <filesystem>

#include "core/atomic_file.hpp"
#include "core/checked.hpp"
#include "core/ir.hpp"
#include "core/memory_limit.hpp"
#include "core/model_stats.hpp"
#include "test_util.hpp"

using namespace slmopt;

TEST_CASE("dtype table maps every type to and from its codes") {
  for (int i = 0; i < static_cast<int>(DType::Count_); ++i) {
    auto t = static_cast<DType>(i);
    CHECK(dtype_from_onnx(traits(t).onnx_code) == t);
    CHECK(dtype_from_name(dtype_name(t)) == t);
    if (traits(t).safetensors_name) CHECK(dtype_from_safetensors(traits(t).safetensors_name) == t);
  }
  CHECK(dtype_size(DType::BF16) == 2);
  CHECK(!dtype_from_onnx(14));  // complex64
  CHECK(!dtype_from_safetensors("F4"));
}

TEST_CASE("checked arithmetic rejects overflow and negative sizes") {
  CHECK(checked_mul(1 << 20, 1 << 20) == (int64_t{1} << 40));
  CHECK_THROWS_WITH(checked_mul(int64_t{1} << 40, int64_t{1} << 40), Catch::Contains("overflows"));
  CHECK_THROWS_WITH(checked_add(INT64_MAX, 1), Catch::Contains("overflows"));
  std::vector<int64_t> big{int64_t{1} << 32, int64_t{1} << 32};
  CHECK_THROWS_WITH(checked_numel(big), Catch::Contains("overflows"));
  std::vector<int64_t> negative{3, -1};
  CHECK_THROWS_WITH(checked_numel(negative), Catch::Contains("negative dimension -1"));
  CHECK(range_within(10, 0, 10));
  CHECK(!range_within(11, 0, 10));
  CHECK(!range_within(5, UINT64_MAX, 10));
}

TEST_CASE("byte sizes: one grammar for --memory-limit, SLMOPT_MEMORY_LIMIT and the device flags") {
  CHECK(parse_byte_size("65536") == 65536u);
  CHECK(parse_byte_size("4MiB") == 4u * 1048576);
  CHECK(parse_byte_size("512K") == 512u * 1024);
  CHECK(parse_byte_size("1.5G") == 1610612736u);
  CHECK(parse_byte_size("2MB") == 2000000u);
  CHECK(parse_byte_size("1TiB") == uint64_t{1} << 40);
  CHECK(parse_byte_size("0") == 0u);
  CHECK(parse_byte_size("2e19") == std::nullopt);  // above 2^64
  CHECK(parse_byte_size("10000PB") == std::nullopt);  // unknown unit
  CHECK(parse_byte_size("1.6e19") == uint64_t{16000000000000000000u});  // above 2^63 still exact
  for (const char* bad : {"", "lots", "4 MiB", "4mib", "-1", "4MiBs", "nan", "inf", "1e30"}) {
    INFO(bad);
    CHECK(!parse_byte_size(bad));
  }
}

TEST_CASE("tensors share bytes until written (copy on write)") {
  Tensor a = Tensor::from_values<float>(DType::F32, {2, 2}, {1, 2, 3, 4});
  Tensor b = a;
  CHECK(b.bytes() == a.bytes());
  b.mutable_data<float>()[0] = 9;
  CHECK(a.data<float>()[0] == 1);
  CHECK(b.data<float>()[0] == 9);
  CHECK_FALSE(a.bit_equal(b));
  CHECK_THROWS_WITH(a.data<double>(), Catch::Contains("wrong element size"));
  CHECK_THROWS_WITH(Tensor(DType::F32, {-2}), Catch::Contains("negative dimension"));
}

TEST_CASE("a mapped view that is misaligned for its dtype is copied, not read unaligned") {
  test::TempDir dir;
  test::write_bytes(dir.file("f.bin"), std::string("\x01\x00\x00\x80\x3f\x00\x00\x00\x40", 9));
  auto file = MappedFile::open(dir.file("f.bin"));
  Tensor t = Tensor::from_buffer(DType::F32, {2}, Buffer::view(file, 1, 8));
  CHECK_FALSE(t.is_mapped());
  CHECK(t.data<float>()[0] == 1.0f);
  CHECK(t.data<float>()[1] == 2.0f);
  Tensor aligned = Tensor::from_buffer(DType::U8, {9}, Buffer::view(file, 0, 9));
  CHECK(aligned.is_mapped());
  CHECK_THROWS_WITH(Tensor::from_buffer(DType::F32, {3}, Buffer::view(file, 0, 8)),
                    Catch::Contains("needs 12 bytes, got 8"));
}

TEST_CASE("AtomicFile leaves either nothing or the whole file") {
  test::TempDir dir;
  {
    AtomicFile f(dir.file("out.bin"));
    f.write("partial");
    CHECK(dir.entries().size() == 1);  // only the temporary
  }
  CHECK(dir.entries().empty());
  test::write_bytes(dir.file("out.bin"), "old");
  {
    AtomicFile f(dir.file("out.bin"));
    f.write("new contents");
    CHECK(test::read_bytes(dir.file("out.bin")) == "old");
    f.commit();
  }
  CHECK(test::read_bytes(dir.file("out.bin")) == "new contents");
  CHECK(dir.entries() == std::vector<std::string>{"out.bin"});
  CHECK_THROWS_WITH(AtomicFile(dir.file("missing/x.bin")), Catch::Contains("missing/x.bin: cannot create output"));
}

TEST_CASE("errors gain context and keep the file") {
  try {
    with_context("tensor 'w'", [] { throw_bad_input("bad shape", "model.onnx"); });
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == "model.onnx: tensor 'w': bad shape");
    CHECK(e.kind() == ErrorKind::BadInput);
  }
}

namespace {
Node make_node(std::string op, std::vector<std::string> in, std::vector<std::string> out) {
  Node n;
  n.op_type = std::move(op);
  n.name = n.op_type + "_" + out.at(0);
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}
}  // namespace

TEST_CASE("topological sort orders nodes, keeps sorted graphs, finds cycles") {
  Graph g;
  g.nodes.push_back(make_node("Relu", {"b"}, {"c"}));
  g.nodes.push_back(make_node("Neg", {"x"}, {"a"}));
  g.nodes.push_back(make_node("Abs", {"a"}, {"b"}));
  sort_topologically(g);
  REQUIRE(g.nodes.size() == 3);
  CHECK(g.nodes[0].op_type == "Neg");
  CHECK(g.nodes[1].op_type == "Abs");
  CHECK(g.nodes[2].op_type == "Relu");
  sort_topologically(g);
  CHECK(g.nodes[0].op_type == "Neg");

  // A subgraph reading an outer value orders its If after that value's producer.
  Graph branch;
  branch.nodes.push_back(make_node("Identity", {"late"}, {"y"}));
  Node if_node = make_node("If", {"cond"}, {"out"});
  Attribute then_branch;
  then_branch.name = "then_branch";
  then_branch.type = AttrType::Graph;
  then_branch.graphs.push_back(branch);
  if_node.attributes.push_back(then_branch);
  Graph g2;
  g2.nodes.push_back(if_node);
  g2.nodes.push_back(make_node("Neg", {"x"}, {"late"}));
  sort_topologically(g2);
  CHECK(g2.nodes[0].op_type == "Neg");

  Graph cyclic;
  cyclic.name = "loop";
  cyclic.nodes.push_back(make_node("Neg", {"b"}, {"a"}));
  cyclic.nodes.push_back(make_node("Neg", {"a"}, {"b"}));
  CHECK_THROWS_WITH(sort_topologically(cyclic), Catch::Contains("graph 'loop' has a cycle"));
}

TEST_CASE("model stats count parameters and estimate quantized sizes") {
  Model m;
  m.graph.initializers.push_back({"w", Tensor(DType::F32, {100, 30}), ""});
  m.graph.initializers.push_back({"b", Tensor(DType::F32, {100}), ""});
  m.graph.initializers.push_back({"shape", Tensor(DType::I64, {2}), ""});
  m.graph.nodes.push_back(make_node("MatMul", {"x", "w"}, {"y"}));
  m.graph.nodes.push_back(make_node("Add", {"y", "b"}, {"z"}));
  m.graph.nodes.push_back(make_node("Add", {"z", "b"}, {"o"}));
  ModelStats s = compute_stats(m);
  CHECK(s.params == 3102);
  CHECK(s.bytes == 12000 + 400 + 16);
  CHECK(s.quantizable_params == 3000);
  REQUIRE(s.op_counts.size() == 2);
  CHECK(s.op_counts[0] == std::pair<std::string, int64_t>{"Add", 2});
  REQUIRE(s.estimates.size() == 3);
  CHECK(s.estimates[0].bytes == 3000 + 416);      // 8 bpw
  CHECK(s.estimates[1].bytes == 1500 + 416);      // 4 bpw
  CHECK(s.estimates[2].bytes == 750 + 416);       // 2 bpw
}
