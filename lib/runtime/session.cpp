#include "runtime/session.hpp"

#include <cstring>
#include <set>
#include <unordered_set>

#include "quant/quantize_weight.hpp"
#include "runtime/constants.hpp"
#include "runtime/kernel_registry.hpp"
#include "runtime/packed_constants.hpp"

namespace slmopt::runtime {

const Tensor* Scope::find(const std::string& name) const {
  for (const Scope* s = this; s; s = s->parent) {
    auto it = s->values.find(name);
    if (it != s->values.end()) return &it->second;
    if (s->constants)
      if (auto c = s->constants->find(name); c != s->constants->end()) return &c->second;
  }
  return nullptr;
}

// Worked out once per graph, not on every run.
struct GraphSchedule {
  std::unordered_map<std::string, Tensor> constants;   // initializers and precomputed values
  std::unordered_map<std::string, size_t> last_use;    // index of the last node reading a value
  std::unordered_set<std::string> keep;                // the graph's outputs
  std::vector<std::vector<std::string>> release;       // values this graph computes, dead after node i
};

namespace {

GraphSchedule make_schedule(const Graph& graph) {
  GraphSchedule s;
  for (const auto& init : graph.initializers) s.constants[init.name] = init.tensor;
  std::vector<std::string> reads;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    reads.clear();
    append_values_read(graph.nodes[i], reads);
    for (const auto& r : reads) s.last_use[r] = i;
  }
  for (const auto& o : graph.outputs) s.keep.insert(o.name);
  std::unordered_set<std::string> computed;
  for (const auto& n : graph.nodes)
    for (const auto& o : n.outputs)
      if (!o.empty()) computed.insert(o);
  s.release.resize(graph.nodes.size());
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    reads.clear();
    append_values_read(graph.nodes[i], reads);
    reads.insert(reads.end(), graph.nodes[i].outputs.begin(), graph.nodes[i].outputs.end());
    std::unordered_set<std::string> seen;
    for (const auto& name : reads) {
      if (name.empty() || !computed.count(name) || s.keep.count(name) || !seen.insert(name).second) continue;
      auto lu = s.last_use.find(name);
      if (lu == s.last_use.end() || lu->second <= i) s.release[i].push_back(name);
    }
  }
  return s;
}

}  // namespace

std::vector<std::string> unsupported_ops(const Model& model) {
  std::set<std::string> missing;
  const auto& registry = KernelRegistry::instance();
  for_each_graph(model.graph, [&](const Graph& g, int) {
    for (const auto& n : g.nodes)
      if (!registry.find(n.domain, n.op_type))
        missing.insert(n.domain.empty() ? n.op_type : n.op_type + " (" + n.domain + ")");
  });
  return {missing.begin(), missing.end()};
}

Session::Session(const Model& model) : model_(model) {
  auto missing = unsupported_ops(model);
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    throw_bad_input("the runtime has no kernel for: " + list);
  }
  packed_constants_ = std::make_unique<PackedConstants>(model);
  for_each_graph(model.graph, [&](const Graph& g, int) {
    schedules_[&g] = std::make_unique<GraphSchedule>(make_schedule(g));
  });
  precompute_constant_nodes();
}

const GraphSchedule& Session::schedule_for(const Graph& graph, std::unique_ptr<GraphSchedule>& local) const {
  if (auto it = schedules_.find(&graph); it != schedules_.end()) return *it->second;
  local = std::make_unique<GraphSchedule>(make_schedule(graph));  // a graph from outside the model
  return *local;
}

namespace {

// A precomputed value larger than this (and not a Constant node's own
// value) stays computed per run: the session must not hold a second copy of a weight.
constexpr uint64_t kMaxPrecomputedBytes = 64 * 1024;

}  // namespace

void Session::precompute_constant_nodes() {
  const Graph& g = model_.graph;
  std::unordered_map<std::string, const Tensor*> constants;
  std::set<std::string> overridable;
  if (model_.ir_version >= 4)
    for (const auto& v : g.inputs) overridable.insert(v.name);
  for (const auto& t : g.initializers)
    if (!overridable.count(t.name) && !t.tensor.is_quantized()) constants[t.name] = &t.tensor;
  const auto& registry = KernelRegistry::instance();
  for (const Node& node : g.nodes) {
    if (!computable_once(node) || node.outputs.empty()) continue;
    std::vector<const Tensor*> inputs;
    bool constant = node.op_type == "Constant" || !node.inputs.empty();
    for (const auto& name : node.inputs) {
      if (name.empty()) {
        inputs.push_back(nullptr);
        continue;
      }
      auto it = constants.find(name);
      constant = constant && it != constants.end();
      inputs.push_back(it == constants.end() ? nullptr : it->second);
    }
    if (!constant) continue;
    OpContext ctx{node, opset(node.domain), inputs, {}, this, nullptr};
    ctx.outputs.resize(node.outputs.size());
    try {
      registry.entry(node.domain, node.op_type)->fn(ctx);
    } catch (const Error&) {
      continue;  // the run reports it, with its context
    }
    uint64_t bytes = 0;
    for (const auto& t : ctx.outputs) bytes += t.nbytes();
    if (node.op_type != "Constant" && bytes > kMaxPrecomputedBytes) continue;
    auto& kept = precomputed_[&node] = std::move(ctx.outputs);
    auto& shared = schedules_.at(&g)->constants;
    for (size_t k = 0; k < node.outputs.size(); ++k)
      if (!node.outputs[k].empty()) {
        constants[node.outputs[k]] = &kept[k];
        shared[node.outputs[k]] = kept[k];
      }
  }
}

Session::~Session() = default;
Session::Session(Session&&) noexcept = default;

const PackedOperand* Session::packed_constant(const MatrixView& v, Operand side, int64_t outer, int64_t k) const {
  return packed_constants_->find_or_pack(v, side, outer, k);
}

int Session::opset(const std::string& domain) const {
  for (const auto& o : model_.opsets)
    if (o.domain == domain || (domain.empty() && o.domain == "ai.onnx")) return static_cast<int>(o.version);
  return 0;
}

std::vector<ValueInfo> Session::feed_inputs() const {
  std::vector<ValueInfo> out;
  for (const auto& v : model_.graph.inputs)
    if (!model_.graph.find_initializer(v.name)) out.push_back(v);
  return out;
}

namespace {

void check_feed(const ValueInfo& declared, const Tensor& value) {
  if (declared.dtype && *declared.dtype != value.dtype())
    throw_bad_input("input '" + declared.name + "' has type " + dtype_name(value.dtype()) + ", the model expects " +
                    dtype_name(*declared.dtype));
  if (!declared.shape) return;
  const auto& dims = *declared.shape;
  bool ok = dims.size() == value.shape().size();
  for (size_t i = 0; ok && i < dims.size(); ++i) ok = !dims[i].is_fixed() || dims[i].value == value.shape()[i];
  if (!ok) {
    std::string want = "[";
    for (size_t i = 0; i < dims.size(); ++i)
      want += (i ? "," : "") + (dims[i].is_fixed() ? std::to_string(dims[i].value) : (dims[i].param.empty() ? "?" : dims[i].param));
    throw_bad_input("input '" + declared.name + "' has shape " + shape_to_string(value.shape()) +
                    ", the model expects " + want + "]");
  }
}

}  // namespace

namespace {

// Records the value's lifetime (planning) or moves it into its arena slot.
template <class Hooks>
void place_in_arena(Hooks& hooks, const std::string& name, size_t node_index,
                    const std::unordered_map<std::string, size_t>& last_use, const std::unordered_set<std::string>& keep,
                    size_t node_count, Tensor& value) {
  if (value.dtype() == DType::String) return;  // strings live outside the arena
  auto lu = last_use.find(name);
  size_t last = keep.count(name) ? node_count : (lu == last_use.end() ? node_index : std::max(lu->second, node_index));
  if (hooks.record) hooks.record->push_back({name, value.nbytes(), node_index, last});
  if (!hooks.plan) return;
  const PlannedBuffer* slot = hooks.plan->find(name);
  if (!slot || slot->lifetime.bytes != value.nbytes())
    throw_bad_input("value '" + name + "' has " + std::to_string(value.nbytes()) +
                    " bytes, the memory plan expected " + (slot ? std::to_string(slot->lifetime.bytes) : "none") +
                    " (inputs of other shapes need a new plan)");
  if (value.nbytes()) std::memcpy(hooks.arena->mutable_data() + slot->offset, value.bytes(), value.nbytes());
  value = Tensor::from_buffer(value.dtype(), value.shape(), Buffer::slice(hooks.arena, slot->offset, value.nbytes()));
  hooks.used = std::max<uint64_t>(hooks.used, slot->offset + value.nbytes());
}

}  // namespace

std::vector<Tensor> Session::run_graph(const Graph& graph, const std::vector<Tensor>& inputs, const Scope* outer,
                                       RunStats* stats) const {
  return run_graph_with(graph, inputs, outer, stats, nullptr);
}

std::vector<Tensor> Session::run_graph_with(const Graph& graph, const std::vector<Tensor>& inputs, const Scope* outer,
                                            RunStats* stats, ArenaHooks* hooks) const {
  std::unique_ptr<GraphSchedule> local;
  const GraphSchedule& sched = schedule_for(graph, local);
  Scope scope;
  scope.parent = outer;
  scope.constants = &sched.constants;
  if (inputs.size() > graph.inputs.size())
    throw_bad_input("graph '" + graph.name + "' takes " + std::to_string(graph.inputs.size()) + " inputs, got " +
                    std::to_string(inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) scope.values[graph.inputs[i].name] = inputs[i];

  uint64_t live = 0, peak = 0, peak_scratch = 0;
  const auto& registry = KernelRegistry::instance();
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    if (auto pre = precomputed_.find(&node); pre != precomputed_.end()) {
      // Held by the session like a weight: no arena slot, not counted as live.
      if (observer_)
        for (size_t k = 0; k < node.outputs.size(); ++k)
          if (!node.outputs[k].empty()) observer_(node, node.outputs[k], pre->second[k]);
      continue;
    }
    OpContext ctx{node, opset(node.domain), {}, {}, this, &scope};
    const KernelEntry* kernel = registry.entry(node.domain, node.op_type);
    if (!kernel) ctx.fail("no kernel for " + (node.domain.empty() ? "" : node.domain + ".") + node.op_type);
    std::vector<Tensor> dequantized;  // float copies for kernels that do not read quantized weights
    ctx.inputs.reserve(node.inputs.size());
    for (const auto& name : node.inputs) {
      if (name.empty()) {
        ctx.inputs.push_back(nullptr);
        continue;
      }
      const Tensor* t = scope.find(name);
      if (!t)
        throw_bad_input(describe(node) + ": input '" + name +
                        "' is not computed before this node");
      if (t->is_quantized() && kernel->quant == QuantInputs::Dequantize) {
        if (dequantized.capacity() == 0) dequantized.reserve(node.inputs.size());  // pointers into it stay valid
        dequantized.push_back(with_context(describe(node), [&] { return quant::dequantize(*t); }));
        t = &dequantized.back();
        ctx.scratch_bytes += t->nbytes();
      }
      ctx.inputs.push_back(t);
    }
    ctx.outputs.resize(node.outputs.size());
    try {
      kernel->fn(ctx);
    } catch (Error& e) {
      e.add_context(describe(node));
      throw;
    }
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      const std::string& name = node.outputs[k];
      if (name.empty()) continue;
      if (hooks) place_in_arena(*hooks, name, i, sched.last_use, sched.keep, graph.nodes.size(), ctx.outputs[k]);
      if (observer_) observer_(node, name, ctx.outputs[k]);
      live += ctx.outputs[k].nbytes();
      scope.values.insert_or_assign(name, std::move(ctx.outputs[k]));
    }
    peak = std::max(peak, live);
    peak_scratch = std::max(peak_scratch, ctx.scratch_bytes);
    // Release values whose last reader just ran.
    for (const auto& name : sched.release[i]) {
      auto v = scope.values.find(name);
      if (v == scope.values.end()) continue;
      live -= v->second.nbytes();
      scope.values.erase(v);
    }
  }
  if (stats) {
    stats->peak_activation_bytes = std::max(stats->peak_activation_bytes, peak);
    stats->peak_scratch_bytes = std::max(stats->peak_scratch_bytes, peak_scratch);
    stats->nodes_run += static_cast<int64_t>(graph.nodes.size());
  }
  std::vector<Tensor> outputs;
  for (const auto& o : graph.outputs) {
    const Tensor* t = scope.find(o.name);
    if (!t) throw_bad_input("graph '" + graph.name + "' output '" + o.name + "' is never computed");
    outputs.push_back(*t);
  }
  return outputs;
}

std::vector<Tensor> Session::bind_feeds(const std::map<std::string, Tensor>& feeds) const {
  const Graph& g = model_.graph;
  std::vector<Tensor> inputs;
  // Positional inputs: feeds by name; initializer defaults for unfed inputs.
  size_t fed = 0;
  for (const auto& v : g.inputs) {
    auto it = feeds.find(v.name);
    if (it != feeds.end()) {
      check_feed(v, it->second);
      inputs.push_back(it->second);
      ++fed;
    } else if (const auto* init = g.find_initializer(v.name)) {
      inputs.push_back(init->tensor);
    } else {
      throw_bad_input("input '" + v.name + "' is not given");
    }
  }
  if (fed != feeds.size())
    for (const auto& [name, t] : feeds) {
      bool known = false;
      for (const auto& v : g.inputs) known = known || v.name == name;
      if (!known) throw_bad_input("the model has no input named '" + name + "'");
    }
  return inputs;
}

std::map<std::string, Tensor> Session::name_outputs(std::vector<Tensor> outs) const {
  std::map<std::string, Tensor> result;
  for (size_t i = 0; i < outs.size(); ++i) result[model_.graph.outputs[i].name] = std::move(outs[i]);
  return result;
}

namespace {

// Errors of a run name the model's file: under eval, two models run side by side.
template <class Fn>
auto naming_file(const Model& model, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (Error& e) {
    e.set_file_if_empty(model.source_path);
    throw;
  }
}

}  // namespace

std::map<std::string, Tensor> Session::run(const std::map<std::string, Tensor>& feeds, RunStats* stats) const {
  return naming_file(model_, [&] { return name_outputs(run_graph(model_.graph, bind_feeds(feeds), nullptr, stats)); });
}

MemoryPlan Session::plan_memory(const std::map<std::string, Tensor>& feeds) const {
  std::vector<BufferLifetime> lifetimes;
  ArenaHooks hooks;
  hooks.record = &lifetimes;
  RunStats stats;
  naming_file(model_, [&] { return run_graph_with(model_.graph, bind_feeds(feeds), nullptr, &stats, &hooks); });
  MemoryPlan plan = plan_greedy(std::move(lifetimes));
  plan.scratch_bytes = stats.peak_scratch_bytes;
  return plan;
}

std::map<std::string, Tensor> Session::run_in_arena(const std::map<std::string, Tensor>& feeds, const MemoryPlan& plan,
                                                    RunStats* stats) const {
  ArenaHooks hooks;
  hooks.plan = &plan;
  hooks.arena = Buffer::allocate(plan.arena_bytes);
  auto outputs = naming_file(
      model_, [&] { return name_outputs(run_graph_with(model_.graph, bind_feeds(feeds), nullptr, stats, &hooks)); });
  if (stats) stats->arena_bytes_used = hooks.used;
  return outputs;
}

}  // namespace slmopt::runtime
