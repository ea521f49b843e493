// Input shapes bound, constants folded, Shape/Size of known shapes folded.
#include <algorithm>
#include <deque>
#include <set>

#include "core/error.hpp"
#include "passes/simplify_rewrites.hpp"
#include "runtime/constants.hpp"
#include "runtime/kernel_registry.hpp"

namespace slmopt::passes::simplify_detail {
namespace {

int opset_of(const Model& m, const std::string& domain) {
  for (const auto& o : m.opsets)
    if (o.domain == domain || ((domain.empty() || domain == "ai.onnx") && (o.domain.empty() || o.domain == "ai.onnx")))
      return static_cast<int>(o.version);
  return 0;
}

std::string dims_text(const std::vector<Dim>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? "," : "") + (dims[i].is_fixed() ? std::to_string(dims[i].value) : dims[i].param.empty() ? "?" : dims[i].param);
  return s + "]";
}

void bind_symbols(std::vector<ValueInfo>& values, const std::map<std::string, int64_t>& dims, int64_t& changed) {
  for (auto& v : values) {
    if (!v.shape) continue;
    bool any = false;
    for (auto& d : *v.shape)
      if (auto it = dims.find(d.param); !d.is_fixed() && it != dims.end()) {
        d = Dim{it->second, {}, d.denotation};
        any = true;
      }
    changed += any;
  }
}

// Constants whose every reader is a node folding will compute (all its
// inputs constants): they go once those nodes are folded.
std::unordered_set<std::string> constants_only_folding_reads(const Model& model, const ValueIndex& index) {
  std::unordered_map<std::string, int> folding_reads;
  for_each_graph(model.graph, [&](const Graph& g, int) {
    for (const auto& n : g.nodes) {
      if (!runtime::computable_once(n)) continue;
      bool all_constant = true;
      for (const auto& i : n.inputs) all_constant = all_constant && (i.empty() || index.constant(i));
      if (!all_constant) continue;
      for (const auto& i : n.inputs)
        if (!i.empty()) ++folding_reads[i];
    }
  });
  std::unordered_set<std::string> dies;
  for (const auto& [name, reads] : folding_reads)
    if (reads == index.readers(name)) dies.insert(name);
  return dies;
}

}  // namespace

int64_t bind_input_shapes(Model& model, const SimplifyOptions& options) {
  Graph& g = model.graph;
  int64_t changed = 0;
  for (const auto& entry : options.input_shapes) {
    // (Not a structured binding: clang 14 cannot capture one in the lambda below.)
    const std::string& name = entry.first;
    const std::vector<int64_t>& dims = entry.second;
    auto it = std::find_if(g.inputs.begin(), g.inputs.end(), [&](const ValueInfo& v) { return v.name == name; });
    if (it == g.inputs.end() || g.find_initializer(name))
      throw_usage("--input-shape " + name + ": the model has no input of that name");
    if (it->shape && !it->shape->empty() && it->shape->size() != dims.size())
      throw_usage("--input-shape " + name + ": the model declares " + std::to_string(it->shape->size()) +
                  " dims " + dims_text(*it->shape) + ", got " + std::to_string(dims.size()));
    std::vector<Dim> bound;
    for (size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] < 0) throw_usage("--input-shape " + name + ": a dim cannot be negative");
      if (it->shape && i < it->shape->size() && (*it->shape)[i].is_fixed() && (*it->shape)[i].value != dims[i])
        throw_usage("--input-shape " + name + ": dim " + std::to_string(i) + " is fixed at " +
                    std::to_string((*it->shape)[i].value) + " by the model, got " + std::to_string(dims[i]));
      bound.push_back(Dim{dims[i], {}, {}});
    }
    if (it->shape != bound) ++changed;
    it->shape = bound;
  }
  if (!options.dims.empty()) {
    std::set<std::string> known;
    for (const auto& v : g.inputs)
      if (v.shape)
        for (const auto& d : *v.shape)
          if (!d.is_fixed()) known.insert(d.param);
    for (const auto& [param, value] : options.dims) {
      if (!known.count(param)) throw_usage("--input-shape " + param + ": no input of that name and no symbolic dim of that name");
      if (value < 0) throw_usage("--input-shape " + param + ": a dim cannot be negative");
    }
    bind_symbols(g.inputs, options.dims, changed);
    int64_t ignored = 0;  // outputs and intermediate values follow the inputs
    bind_symbols(g.outputs, options.dims, ignored);
    bind_symbols(g.value_info, options.dims, ignored);
  }
  return changed;
}

int64_t fold_constants(Model& model, uint64_t max_folded_bytes) {
  ValueIndex index(model);
  const auto& registry = runtime::KernelRegistry::instance();
  std::deque<NamedTensor> computed;  // appended to the initializers after the sweep (indices stay valid)
  std::unordered_map<std::string, const Tensor*> fresh;
  const std::unordered_set<std::string> dies = constants_only_folding_reads(model, index);
  // Sibling bodies (an If's two branches) may each compute a value of the
  // same name; only a name defined once may become a main-graph initializer.
  std::unordered_map<std::string, int> definitions;
  for_each_graph(model.graph, [&](const Graph& g, int) {
    for (const auto& n : g.nodes)
      for (const auto& o : n.outputs)
        if (!o.empty()) ++definitions[o];
  });
  int64_t folded = 0;
  for_each_graph(model.graph, [&](Graph& g, int depth) {
    std::unordered_set<std::string> returned;  // a body's own outputs stay nodes
    if (depth > 0)
      for (const auto& v : g.outputs) returned.insert(v.name);
    std::vector<Node> kept;
    kept.reserve(g.nodes.size());
    for (auto& n : g.nodes) {
      auto fold = [&]() -> bool {
        if (!runtime::computable_once(n) || n.outputs.empty()) return false;
        const runtime::KernelEntry* kernel = registry.entry(n.domain, n.op_type);
        if (!kernel) return false;
        std::vector<const Tensor*> inputs;
        bool any = false;
        for (const auto& i : n.inputs) {
          if (i.empty()) {
            inputs.push_back(nullptr);
            continue;
          }
          const Tensor* t = index.constant(i);
          if (auto f = fresh.find(i); !t && f != fresh.end()) t = f->second;
          if (!t) return false;
          inputs.push_back(t);
          any = true;
        }
        if (!any) return false;
        for (const auto& o : n.outputs)
          if (!o.empty() && (index.is_output(o) || returned.count(o) || definitions[o] > 1)) return false;
        runtime::OpContext ctx{n, opset_of(model, n.domain), inputs, {}, nullptr, nullptr};
        ctx.outputs.resize(n.outputs.size());
        try {
          kernel->fn(ctx);
        } catch (const Error&) {
          return false;  // left to the run, which reports it with the inputs it really gets
        }
        // The model may not grow by more than small values: a large result
        // is stored only as far as the constants it comes from go (every
        // reader of theirs folds too: the four gate slices of a weight).
        uint64_t out_bytes = 0, freed_bytes = 0;
        for (const auto& t : ctx.outputs) out_bytes += t.nbytes();
        for (size_t k = 0; k < n.inputs.size(); ++k)
          if (inputs[k] && dies.count(n.inputs[k])) freed_bytes += inputs[k]->nbytes() / index.readers(n.inputs[k]);
        if (out_bytes > max_folded_bytes && out_bytes > freed_bytes) return false;
        for (size_t k = 0; k < n.outputs.size(); ++k)
          if (!n.outputs[k].empty()) computed.push_back({n.outputs[k], std::move(ctx.outputs[k]), {}});
        return true;
      };
      const size_t before = computed.size();
      if (fold()) {
        // Later nodes of this sweep read the new constants (a chain folds at once).
        for (size_t k = before; k < computed.size(); ++k) fresh[computed[k].name] = &computed[k].tensor;
        ++folded;
      } else {
        kept.push_back(std::move(n));
      }
    }
    g.nodes = std::move(kept);
  });
  for (auto& c : computed) model.graph.initializers.push_back(std::move(c));
  return folded;
}

int64_t fold_shapes(Model& model) {
  Graph& g = model.graph;
  bool any_shape_node = false;
  for (const auto& n : g.nodes) any_shape_node = any_shape_node || (default_domain(n) && (n.op_type == "Shape" || n.op_type == "Size"));
  if (!any_shape_node) return 0;
  const auto types = value_types(model);
  const ValueIndex index(model);
  const int opset = opset_of(model, "");
  int64_t folded = 0;
  std::vector<Node> kept;
  for (auto& n : g.nodes) {
    const bool shape = n.op_type == "Shape", size = n.op_type == "Size";
    if (!default_domain(n) || (!shape && !size) || n.inputs.empty() || n.outputs.size() != 1 || index.is_output(n.outputs[0])) {
      kept.push_back(std::move(n));
      continue;
    }
    auto it = types.find(n.inputs[0]);
    std::vector<int64_t> dims;
    bool known = it != types.end() && it->second.shape.has_value();
    if (known)
      for (const auto& d : *it->second.shape) {
        known = known && d.is_fixed();
        dims.push_back(d.value);
      }
    if (!known) {
      kept.push_back(std::move(n));
      continue;
    }
    Tensor value;
    if (size) {
      int64_t count = 1;
      for (int64_t d : dims) count *= d;
      value = Tensor::from_values<int64_t>(DType::I64, {}, {count});
    } else {
      // Opset 15's start and end: a slice of the dims, negative from the back, clamped.
      const auto rank = static_cast<int64_t>(dims.size());
      int64_t start = 0, end = rank;
      if (opset >= 15) {
        if (const Attribute* a = n.find_attribute("start")) start = a->i;
        if (const Attribute* a = n.find_attribute("end")) end = a->i;
      }
      auto clamp = [&](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
      start = clamp(start);
      end = std::max(start, clamp(end));
      std::vector<int64_t> slice(dims.begin() + start, dims.begin() + end);
      value = Tensor::from_values<int64_t>(DType::I64, {static_cast<int64_t>(slice.size())}, slice);
    }
    g.initializers.push_back({n.outputs[0], std::move(value), {}});
    ++folded;
  }
  g.nodes = std::move(kept);
  return folded;
}

}  // namespace slmopt::passes::simplify_detail
