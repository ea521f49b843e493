// If and Loop: run subgraphs with the session, seeing the enclosing scope.
#include <cstring>
#include "runtime/kernels/kernel_util.hpp"
#include "runtime/session.hpp"

namespace slmopt::runtime {
namespace {

const Graph& graph_attr(const OpContext& c, const char* name) {
  const Attribute* a = c.attr(name);
  if (!a || a->type != AttrType::Graph || a->graphs.empty()) c.fail(std::string("missing graph attribute '") + name + "'");
  return a->graphs[0];
}

bool truth(const OpContext& c, const Tensor& t) {
  if (t.dtype() != DType::Bool || t.numel() != 1) c.fail("condition must be a single bool");
  return t.data<bool>()[0];
}

void if_op(OpContext& c) {
  const Graph& branch = graph_attr(c, truth(c, c.input(0)) ? "then_branch" : "else_branch");
  auto outs = c.session->run_graph(branch, {}, c.scope, nullptr);
  if (outs.size() != c.outputs.size()) c.fail("branch returns " + std::to_string(outs.size()) + " values");
  for (size_t i = 0; i < outs.size(); ++i) c.output(i) = std::move(outs[i]);
}

// Stacks equally shaped tensors along a new leading axis.
Tensor stack(const OpContext& c, const std::vector<Tensor>& parts) {
  if (parts.empty()) return Tensor(DType::F32, {0});
  std::vector<int64_t> shape = parts[0].shape();
  shape.insert(shape.begin(), static_cast<int64_t>(parts.size()));
  Tensor out(parts[0].dtype(), shape);
  size_t offset = 0;
  for (const auto& p : parts) {
    if (p.shape() != parts[0].shape() || p.dtype() != parts[0].dtype()) c.fail("scan outputs change shape between iterations");
    if (p.nbytes()) std::memcpy(out.mutable_bytes() + offset, p.bytes(), p.nbytes());
    offset += p.nbytes();
  }
  return out;
}

void loop_op(OpContext& c) {
  const Graph& body = graph_attr(c, "body");
  const int64_t max_trips = c.has_input(0) ? int_values(c.input(0)).at(0) : INT64_MAX;
  bool cond = c.has_input(1) ? truth(c, c.input(1)) : true;
  std::vector<Tensor> carried;
  for (size_t i = 2; i < c.input_count(); ++i) carried.push_back(c.input(i));
  const size_t n_carried = carried.size();
  const size_t n_scan = body.outputs.size() - 1 - n_carried;
  if (body.outputs.size() < 1 + n_carried) c.fail("body outputs do not match the loop-carried values");
  std::vector<std::vector<Tensor>> scans(n_scan);
  for (int64_t trip = 0; trip < max_trips && cond; ++trip) {
    std::vector<Tensor> in = {Tensor::from_values<int64_t>(DType::I64, {}, {trip}),
                              Tensor::from_values<bool>(DType::Bool, {}, {cond})};
    in.insert(in.end(), carried.begin(), carried.end());
    auto out = c.session->run_graph(body, in, c.scope, nullptr);
    cond = truth(c, out[0]);
    for (size_t i = 0; i < n_carried; ++i) carried[i] = std::move(out[1 + i]);
    for (size_t i = 0; i < n_scan; ++i) scans[i].push_back(std::move(out[1 + n_carried + i]));
  }
  for (size_t i = 0; i < n_carried; ++i) c.output(i) = carried[i];
  for (size_t i = 0; i < n_scan; ++i) c.output(n_carried + i) = stack(c, scans[i]);
}

}  // namespace

void register_control_flow(KernelRegistry& r) {
  r.add("", "If", if_op);
  r.add("", "Loop", loop_op);
}

}  // namespace slmopt::runtime
