// `simplify`: each rewrite on a graph built for it (the model computes the
// same bits, or within the stated tolerance where BatchNormalization folds),
// and on real models from four exporters.
#include <catch2/catch.hpp>

#include <cstring>
#include <set>
#include <nlohmann/json.hpp>

#include "calib/dataset.hpp"
#include "model_io.hpp"
#include "passes/simplify.hpp"
#include "runtime/session.hpp"
#include "test_util.hpp"

using namespace slmopt;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

Node node(std::string op, std::vector<std::string> inputs, std::vector<std::string> outputs,
          std::vector<Attribute> attributes = {}) {
  Node n;
  n.op_type = std::move(op);
  n.name = outputs.empty() ? n.op_type : outputs[0];
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  n.attributes = std::move(attributes);
  return n;
}

// Dims of -1 are the symbolic batch "N".
ValueInfo value(const std::string& name, DType dtype, const std::vector<int64_t>& dims) {
  std::vector<Dim> shape;
  for (int64_t d : dims) shape.push_back(d < 0 ? Dim{-1, "N", {}} : Dim{d, {}, {}});
  return {name, dtype, shape, {}, {}, {}};
}

Tensor positive_tensor(std::vector<int64_t> shape, uint32_t seed) {
  Tensor t = test::gaussian_tensor(std::move(shape), seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = 0.5f + std::abs(t.data<float>()[i]);
  return t;
}

// x [N,3,8,8] -> Conv -> BatchNormalization -> Relu -> Reshape to [N, -1]
// (the shape computed from Shape/Gather/Unsqueeze/Concat) -> Identity ->
// Dropout -> Cast to float -> y; plus a constant sub-graph (Add of two
// constants) that scales it, and a node nobody reads.
Model exporter_like_model(int64_t batch) {
  Model m;
  m.opsets.push_back({"", 13});
  m.graph.inputs.push_back(value("x", DType::F32, {batch, 3, 8, 8}));
  m.graph.outputs.push_back(value("y", DType::F32, {batch, 256}));
  auto init = [&](const std::string& name, Tensor t) { m.graph.initializers.push_back({name, std::move(t), {}}); };
  init("W", test::gaussian_tensor({4, 3, 3, 3}, 1, 0.3f));
  init("B", test::gaussian_tensor({4}, 2));
  init("scale", positive_tensor({4}, 3));
  init("beta", test::gaussian_tensor({4}, 4));
  init("mean", test::gaussian_tensor({4}, 5));
  init("var", positive_tensor({4}, 6));
  init("zero", Tensor::from_values<int64_t>(DType::I64, {}, {0}));
  init("axes", Tensor::from_values<int64_t>(DType::I64, {1}, {0}));
  init("minus_one", Tensor::from_values<int64_t>(DType::I64, {1}, {-1}));
  init("c1", Tensor::from_values<float>(DType::F32, {1}, {1.5f}));
  init("c2", Tensor::from_values<float>(DType::F32, {1}, {0.25f}));
  auto& n = m.graph.nodes;
  n.push_back(node("Conv", {"x", "W", "B"}, {"conv"}, {Attribute::integers("pads", {1, 1, 1, 1})}));
  n.push_back(node("BatchNormalization", {"conv", "scale", "beta", "mean", "var"}, {"bn"}));
  n.push_back(node("Relu", {"bn"}, {"relu"}));
  n.push_back(node("Shape", {"relu"}, {"shape"}));
  n.push_back(node("Gather", {"shape", "zero"}, {"batch"}));
  n.push_back(node("Unsqueeze", {"batch", "axes"}, {"batch1"}));
  n.push_back(node("Concat", {"batch1", "minus_one"}, {"new_shape"}, {Attribute::integer("axis", 0)}));
  n.push_back(node("Reshape", {"relu", "new_shape"}, {"flat"}));
  n.push_back(node("Identity", {"flat"}, {"same"}));
  n.push_back(node("Dropout", {"same"}, {"dropped"}));
  n.push_back(node("Cast", {"dropped"}, {"cast"}, {Attribute::integer("to", 1)}));
  n.push_back(node("Add", {"c1", "c2"}, {"factor"}));
  n.push_back(node("Mul", {"cast", "factor"}, {"y"}));
  n.push_back(node("Neg", {"x"}, {"unused"}));
  return m;
}

std::map<std::string, Tensor> run(const Model& m, const Tensor& x) { return runtime::Session(m).run({{"x", x}}); }

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}

int count_ops(const Model& m, const std::string& op) {
  return static_cast<int>(std::count_if(m.graph.nodes.begin(), m.graph.nodes.end(),
                                        [&](const Node& n) { return n.op_type == op; }));
}

}  // namespace

TEST_CASE("simplify folds constants and shapes, removes no-ops and dead nodes, bit for bit") {
  const Model original = exporter_like_model(2);
  Model m = original;
  passes::SimplifyOptions options;
  options.fold_batch_norm = false;
  const auto r = passes::simplify(m, options);
  CHECK(r.folded_nodes == 4);   // Gather, Unsqueeze, Concat of the folded shape; Add of two constants
  CHECK(r.folded_shapes == 1);  // Shape of a [2,4,8,8] value
  CHECK(r.identities == 2);     // Identity, Dropout
  CHECK(r.casts == 1);
  CHECK(r.dead_nodes == 1);     // Neg
  CHECK(r.unused_initializers >= 4);  // zero, axes, minus_one, c1, c2 (now unread)
  CHECK(r.exact());
  CHECK(m.graph.nodes.size() == 5);  // Conv, BatchNormalization, Relu, Reshape, Mul
  CHECK(count_ops(m, "Shape") == 0);
  const Tensor x = test::gaussian_tensor({2, 3, 8, 8}, 7);
  CHECK(same_bits(run(original, x).at("y"), run(m, x).at("y")));
  // The same inputs through the library's own check.
  const auto diffs = passes::compare_runs(original, m, {{{"x", x}}});
  REQUIRE(diffs.size() == 1);
  CHECK(diffs[0].identical);
}

TEST_CASE("simplify folds BatchNormalization into the Conv within its stated tolerance") {
  const Model original = exporter_like_model(1);
  Model m = original;
  const auto r = passes::simplify(m, {});
  CHECK(r.batch_norms == 1);
  CHECK_FALSE(r.exact());
  CHECK(count_ops(m, "BatchNormalization") == 0);
  const Tensor x = test::gaussian_tensor({1, 3, 8, 8}, 8);
  CHECK(test::relative_error(run(original, x).at("y"), run(m, x).at("y")) < 1e-6);
  // The folded weights: W * scale / sqrt(var + eps) per output channel.
  const NamedTensor* w = nullptr;
  for (const auto& t : m.graph.initializers)
    if (t.tensor.shape() == std::vector<int64_t>{4, 3, 3, 3}) w = &t;
  REQUIRE(w);
  const Tensor& w0 = original.graph.find_initializer("W")->tensor;
  const float s0 = original.graph.find_initializer("scale")->tensor.data<float>()[0] /
                   std::sqrt(original.graph.find_initializer("var")->tensor.data<float>()[0] + 1e-5f);
  CHECK(w->tensor.data<float>()[0] == Approx(w0.data<float>()[0] * s0).epsilon(1e-6));
}

TEST_CASE("simplify fuses an activation into its Conv as FusedConv, bit for bit") {
  const Model original = exporter_like_model(1);
  for (const std::string act : {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "Clip"}) {
    INFO(act);
    Model before = original;
    for (auto& n : before.graph.nodes)
      if (n.op_type == "Relu") n.op_type = act;
    if (act == "Clip") {
      before.graph.initializers.push_back({"lo", Tensor::from_values<float>(DType::F32, {}, {-0.5f}), {}});
      before.graph.initializers.push_back({"hi", Tensor::from_values<float>(DType::F32, {}, {0.75f}), {}});
      for (auto& n : before.graph.nodes)
        if (n.op_type == "Clip") n.inputs = {"bn", "lo", "hi"};
    }
    if (act == "LeakyRelu")
      for (auto& n : before.graph.nodes)
        if (n.op_type == "LeakyRelu") {
          Attribute alpha;
          alpha.name = "alpha";
          alpha.type = AttrType::Float;
          alpha.f = 0.3f;
          n.attributes.push_back(alpha);
        }
    Model m = before;
    passes::SimplifyOptions options;
    options.fold_batch_norm = false;
    options.fuse_activations = true;
    const auto r = passes::simplify(m, options);
    CHECK(r.fused_activations == 0);  // the Conv's reader is the BatchNormalization
    // With the BatchNormalization kept apart first, the activation follows it, not the Conv: fold it.
    Model folded = before;
    passes::simplify(folded, {});
    Model fused = folded;
    const auto r2 = passes::simplify(fused, options);
    CHECK(r2.fused_activations == 1);
    CHECK(count_ops(fused, "FusedConv") == 1);
    CHECK(count_ops(fused, act) == 0);
    const Tensor x = test::gaussian_tensor({1, 3, 8, 8}, 9);
    CHECK(same_bits(run(folded, x).at("y"), run(fused, x).at("y")));
  }
}

TEST_CASE("simplify binds symbolic input dims and then folds the shapes they fix") {
  const Model symbolic = exporter_like_model(-1);
  Model unbound = symbolic;
  passes::SimplifyOptions keep_bn;
  keep_bn.fold_batch_norm = false;
  const auto r0 = passes::simplify(unbound, keep_bn);
  CHECK(r0.folded_shapes == 0);  // N is not known
  CHECK(count_ops(unbound, "Shape") == 1);

  Model by_symbol = symbolic;
  passes::SimplifyOptions bind = keep_bn;
  bind.dims["N"] = 3;
  const auto r1 = passes::simplify(by_symbol, bind);
  CHECK(r1.bound_inputs == 1);
  CHECK(r1.folded_shapes == 1);
  CHECK(by_symbol.graph.inputs[0].shape->at(0).value == 3);
  CHECK(by_symbol.graph.outputs[0].shape->at(0).value == 3);
  const Tensor x = test::gaussian_tensor({3, 3, 8, 8}, 10);
  CHECK(same_bits(run(symbolic, x).at("y"), run(by_symbol, x).at("y")));
  // Another batch size is now refused with the bound shape named.
  CHECK_THROWS_WITH(run(by_symbol, test::gaussian_tensor({2, 3, 8, 8}, 11)), Catch::Contains("[3,3,8,8]"));

  Model by_input = symbolic;
  passes::SimplifyOptions shape = keep_bn;
  shape.input_shapes["x"] = {3, 3, 8, 8};
  CHECK(passes::simplify(by_input, shape).folded_shapes == 1);
  shape.input_shapes["x"] = {3, 3, 9, 8};  // contradicts the declared 8
  Model bad = symbolic;
  CHECK_THROWS_WITH(passes::simplify(bad, shape), Catch::Contains("dim 2 is fixed at 8"));
  passes::SimplifyOptions unknown;
  unknown.dims["batch"] = 1;
  CHECK_THROWS_WITH(passes::simplify(bad, unknown), Catch::Contains("batch"));
}

TEST_CASE("simplify keeps what it must: graph outputs, QDQ weights, large folded values") {
  SECTION("an Identity that writes a graph output renames its producer") {
    Model m;
    m.opsets.push_back({"", 13});
    m.graph.inputs.push_back(value("x", DType::F32, {4}));
    m.graph.outputs.push_back(value("y", DType::F32, {4}));
    m.graph.nodes.push_back(node("Relu", {"x"}, {"r"}));
    m.graph.nodes.push_back(node("Identity", {"r"}, {"y"}));
    const Model original = m;
    CHECK(passes::simplify(m, {}).identities == 1);
    REQUIRE(m.graph.nodes.size() == 1);
    CHECK(m.graph.nodes[0].outputs[0] == "y");
    const Tensor x = test::gaussian_tensor({4}, 12);
    CHECK(same_bits(run(original, x).at("y"), run(m, x).at("y")));
  }
  SECTION("DequantizeLinear of int8 weights stays: folding it would undo the quantization") {
    Model m;
    m.opsets.push_back({"", 13});
    m.graph.inputs.push_back(value("x", DType::F32, {1, 4}));
    m.graph.outputs.push_back(value("y", DType::F32, {1, 2}));
    m.graph.initializers.push_back({"q", Tensor::from_values<int8_t>(DType::I8, {4, 2}, {1, -2, 3, -4, 5, -6, 7, -8}), {}});
    m.graph.initializers.push_back({"s", Tensor::from_values<float>(DType::F32, {}, {0.1f}), {}});
    m.graph.nodes.push_back(node("DequantizeLinear", {"q", "s"}, {"w"}));
    m.graph.nodes.push_back(node("MatMul", {"x", "w"}, {"y"}));
    CHECK_FALSE(passes::simplify(m, {}).changed());
    CHECK(m.graph.nodes.size() == 2);
  }
  SECTION("a constant that would grow past the limit stays computed") {
    Model m;
    m.opsets.push_back({"", 13});
    m.graph.inputs.push_back(value("x", DType::F32, {256, 256}));
    m.graph.outputs.push_back(value("y", DType::F32, {256, 256}));
    m.graph.initializers.push_back({"shape", Tensor::from_values<int64_t>(DType::I64, {2}, {256, 256}), {}});
    m.graph.nodes.push_back(node("ConstantOfShape", {"shape"}, {"ones"}));
    m.graph.nodes.push_back(node("Add", {"x", "ones"}, {"y"}));
    CHECK(passes::simplify(m, {}).folded_nodes == 0);
    passes::SimplifyOptions big;
    big.max_folded_bytes = 1 << 20;
    CHECK(passes::simplify(m, big).folded_nodes == 1);
  }
}

TEST_CASE("simplify on real models from four exporters: fewer nodes, the same outputs") {
  struct Case {
    fs::path file;
    std::map<std::string, Tensor> feeds;
  };
  std::vector<Case> cases;
  if (auto dir = test::more_models_dir()) {
    cases.push_back({*dir / "ch_ppocr_mobile_v2.0_cls_infer.onnx", {{"x", test::gaussian_tensor({1, 3, 48, 192}, 3, 0.5f)}}});
    cases.push_back({*dir / "ch_PP-OCRv4_det_infer.onnx", {{"x", test::gaussian_tensor({1, 3, 64, 64}, 1, 0.5f)}}});
    Tensor audio = test::gaussian_tensor({1, 512}, 4, 0.1f);
    Tensor state(DType::F32, {2, 1, 128});
    std::memset(state.mutable_bytes(), 0, state.nbytes());
    cases.push_back({*dir / "silero_vad_v5.onnx",
                     {{"input", audio}, {"state", state}, {"sr", Tensor::from_values<int64_t>(DType::I64, {}, {16000})}}});
  }
  if (auto dir = test::real_models_dir()) {
    cases.push_back({*dir / "melspectrogram.onnx", {{"input", test::gaussian_tensor({1, 1280}, 5, 1000.0f)}}});
    cases.push_back({*dir / "embedding_model.onnx", {{"input_1", test::gaussian_tensor({1, 76, 32, 1}, 6)}}});
  }
  for (auto& c : cases) {
    INFO(c.file.filename().string());
    const Model original = load_model(c.file.string());
    Model m = original;
    passes::SimplifyOptions options;
    options.fuse_activations = true;
    const auto r = passes::simplify(m, options);
    CHECK(r.changed());
    CHECK(r.nodes_after < r.nodes_before);
    const auto diffs = passes::compare_runs(original, m, {c.feeds});
    for (const auto& d : diffs) {
      INFO(d.name);
      CHECK((d.identical || (!r.exact() && d.rel_l2 < 1e-5)));
    }
  }
}

TEST_CASE("slmopt simplify: report, JSON, check, and errors") {
  test::TempDir tmp;
  Model m = exporter_like_model(-1);
  save_model(m, tmp.file("m.onnx"));
  auto r = test::run_slmopt("simplify " + tmp.file("m.onnx") + " -o " + tmp.file("s.onnx") +
                            " --input-shape N=2 --json");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json doc = json::parse(r.out);
  CHECK(doc["check"] == "within tolerance");  // BatchNormalization folded
  CHECK(doc["nodes_after"].get<int>() < doc["nodes_before"].get<int>());
  CHECK(doc["outputs"][0]["rel_l2"].get<double>() < 1e-5);
  const Model s = load_model(tmp.file("s.onnx"));
  CHECK(s.graph.inputs[0].shape->at(0).value == 2);

  // Once simplified, nothing is left to do: exit 2, unless allowed.
  r = test::run_slmopt("simplify " + tmp.file("s.onnx") + " -o " + tmp.file("s2.onnx") + " --input-shape x=2,3,8,8");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("nothing to simplify"));
  CHECK_FALSE(fs::exists(tmp.file("s2.onnx")));
  r = test::run_slmopt("simplify " + tmp.file("s.onnx") + " -o " + tmp.file("s2.onnx") + " --allow-empty --no-fold-bn");
  CHECK(r.exit_code == 0);

  r = test::run_slmopt("simplify " + tmp.file("m.onnx") + " -o " + tmp.file("s3.onnx") + " --input-shape x=2,3");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("declares 4 dims"));
  r = test::run_slmopt("simplify " + tmp.file("m.onnx") + " -o " + tmp.file("s3.onnx") + " --input-shape x=2,a,8,8");
  CHECK(r.exit_code == 2);
  CHECK_FALSE(fs::exists(tmp.file("s3.onnx")));
}

TEST_CASE("the session computes nodes of constants once, observed and bit for bit as when run") {
  // y = x + (c1 + c2), the constant given as a Constant node, as exporters write it.
  Model m;
  m.opsets.push_back({"", 13});
  m.graph.inputs.push_back(value("x", DType::F32, {4}));
  m.graph.outputs.push_back(value("y", DType::F32, {4}));
  Attribute v;
  v.name = "value";
  v.type = AttrType::Tensor;
  v.tensors.push_back({"c1", test::gaussian_tensor({4}, 30), {}});
  m.graph.nodes.push_back(node("Constant", {}, {"c1"}, {v}));
  m.graph.initializers.push_back({"c2", test::gaussian_tensor({4}, 31), {}});
  m.graph.nodes.push_back(node("Add", {"c1", "c2"}, {"c"}));
  m.graph.nodes.push_back(node("Add", {"x", "c"}, {"y"}));
  runtime::Session session(m);
  std::set<std::string> observed;
  session.set_observer([&](const Node&, const std::string& name, const Tensor&) { observed.insert(name); });
  const Tensor x = test::gaussian_tensor({4}, 32);
  const Tensor y = session.run({{"x", x}}).at("y");
  CHECK(observed == std::set<std::string>{"c1", "c", "y"});
  for (int64_t i = 0; i < 4; ++i) {
    const float c = v.tensors[0].tensor.data<float>()[i] + m.graph.initializers[0].tensor.data<float>()[i];
    CHECK(y.data<float>()[i] == x.data<float>()[i] + c);
  }
  // The same through a planned arena: constants hold no slot.
  const auto plan = session.plan_memory({{"x", x}});
  CHECK(same_bits(session.run_in_arena({{"x", x}}, plan).at("y"), y));
}

TEST_CASE("constants an If's two branches compute under the same name are folded only where the name is unique") {
  // out = If(cond) { c = Add(k1, k2) } else { c = Mul(k1, k2) }: both branches define "c".
  Model m;
  m.opsets.push_back({"", 13});
  m.graph.inputs.push_back(value("cond", DType::Bool, {}));
  m.graph.outputs.push_back(value("out", DType::F32, {2}));
  m.graph.initializers.push_back({"k1", Tensor::from_values<float>(DType::F32, {2}, {1.5f, 2.0f}), {}});
  m.graph.initializers.push_back({"k2", Tensor::from_values<float>(DType::F32, {2}, {4.0f, 0.5f}), {}});
  auto branch = [&](const std::string& op) {
    Graph g;
    g.name = op;
    g.nodes.push_back(node(op, {"k1", "k2"}, {"c"}));
    g.outputs.push_back(value("c", DType::F32, {2}));
    return g;
  };
  Node n = node("If", {"cond"}, {"out"});
  Attribute then_branch, else_branch;
  then_branch.name = "then_branch";
  then_branch.type = AttrType::Graph;
  then_branch.graphs.push_back(branch("Add"));
  else_branch.name = "else_branch";
  else_branch.type = AttrType::Graph;
  else_branch.graphs.push_back(branch("Mul"));
  n.attributes = {then_branch, else_branch};
  m.graph.nodes.push_back(n);
  // The bodies return "c" themselves, so nothing may fold; give each a reader instead.
  for (auto* a : {&m.graph.nodes[0].attributes[0], &m.graph.nodes[0].attributes[1]}) {
    Graph& g = a->graphs[0];
    g.nodes.push_back(node("Neg", {"c"}, {"r_" + g.name}));
    g.outputs[0].name = "r_" + g.name;
  }
  const Model original = m;
  passes::simplify(m, {});
  for (bool cond : {true, false}) {
    INFO(cond);
    const std::map<std::string, Tensor> feeds = {{"cond", Tensor::from_values<bool>(DType::Bool, {}, {cond})}};
    CHECK(same_bits(runtime::Session(original).run(feeds).at("out"), runtime::Session(m).run(feeds).at("out")));
  }
  int initializers_named_c = 0;
  for (const auto& t : m.graph.initializers) initializers_named_c += t.name == "c";
  CHECK(initializers_named_c == 0);
}
