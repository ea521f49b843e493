#include "onnx_test_models.hpp"

#include "test_util.hpp"

namespace slmopt::test {
namespace {

ValueInfo tensor_value(const std::string& name, DType dtype, std::vector<Dim> dims) {
  ValueInfo v;
  v.name = name;
  v.dtype = dtype;
  v.shape = std::move(dims);
  return v;
}

Node node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out) {
  Node n;
  n.op_type = op;
  n.name = op + "_" + out.at(0);
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

Graph branch(const std::string& name, float value, bool with_initializer) {
  Graph g;
  g.name = name;
  if (with_initializer) {
    g.initializers.push_back({name + "_w", Tensor::from_values<float>(DType::F32, {2}, {value, -value}), ""});
    g.nodes.push_back(node("Add", {"x", name + "_w"}, {name + "_out"}));
  } else {
    g.nodes.push_back(node("Neg", {"x"}, {name + "_out"}));
  }
  g.outputs.push_back(tensor_value(name + "_out", DType::F32, {Dim{-1, "batch", ""}, Dim{2, "", ""}}));
  return g;
}

}  // namespace

Model make_every_dtype_model(uint32_t seed) {
  Model m;
  m.ir_version = 8;
  m.opsets = {{"", 17}};
  m.producer_name = "slmopt-tests";
  m.producer_version = "1";
  m.doc = "generated";
  m.metadata = {{"author", "tests"}, {"purpose", "round trip"}};
  m.provenance = {{"prune", "--sparsity 0.5", "0.1.0"}};
  Graph& g = m.graph;
  g.name = "every_dtype";
  g.inputs.push_back(tensor_value("x", DType::F32, {Dim{-1, "batch", ""}, Dim{2, "", ""}}));
  g.inputs.push_back(tensor_value("cond", DType::Bool, {}));

  const DType types[] = {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I8,
                         DType::U8,  DType::I16, DType::U16,  DType::I32, DType::U32,
                         DType::I64, DType::U64, DType::Bool, DType::String};
  uint32_t k = seed;
  for (DType t : types) {
    std::string name = std::string("w_") + dtype_name(t);
    std::vector<int64_t> shape = {3, 5};
    g.initializers.push_back({name, random_tensor(t, shape, ++k), "doc of " + name});
    g.nodes.push_back(node("Identity", {name}, {name + "_out"}));
    g.outputs.push_back(tensor_value(name + "_out", t, {Dim{3, "", ""}, Dim{5, "", ""}}));
  }
  // Scalars and empty tensors are legal and easy to get wrong.
  g.initializers.push_back({"scalar", Tensor::from_values<int64_t>(DType::I64, {}, {42}), ""});
  g.initializers.push_back({"empty", Tensor(DType::F32, {0, 4}), ""});

  Node constant = node("Constant", {}, {"c"});
  Attribute value;
  value.name = "value";
  value.type = AttrType::Tensor;
  value.tensors.push_back({"const_value", random_tensor(DType::F32, {2}, ++k), ""});
  constant.attributes.push_back(value);
  g.nodes.push_back(constant);

  Node iff = node("If", {"cond"}, {"branch_out"});
  Attribute then_branch, else_branch;
  then_branch.name = "then_branch";
  then_branch.type = AttrType::Graph;
  then_branch.graphs.push_back(branch("then", 1.5f, true));
  else_branch.name = "else_branch";
  else_branch.type = AttrType::Graph;
  else_branch.graphs.push_back(branch("else", 0, false));
  iff.attributes = {then_branch, else_branch};
  g.nodes.push_back(iff);
  g.nodes.push_back(node("Add", {"branch_out", "c"}, {"y"}));
  g.outputs.push_back(tensor_value("y", DType::F32, {Dim{-1, "batch", ""}, Dim{2, "", ""}}));

  Node transpose = node("Transpose", {"x"}, {"xt"});
  Attribute perm;
  perm.name = "perm";
  perm.type = AttrType::Ints;
  perm.ints = {1, 0};
  transpose.attributes.push_back(perm);
  g.nodes.push_back(transpose);
  g.value_info.push_back(tensor_value("xt", DType::F32, {Dim{2, "", ""}, Dim{-1, "batch", ""}}));
  g.outputs.push_back(tensor_value("xt", DType::F32, {Dim{2, "", ""}, Dim{-1, "", ""}}));
  return m;
}

}  // namespace slmopt::test
