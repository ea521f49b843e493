// Session: executes a Model with the reference kernels. Values that are dead
// (no later node reads them and they are not outputs) are released as soon as
// their last reader has run; the run reports the peak bytes of live activations.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/ir.hpp"
#include "runtime/memory_plan.hpp"
#include "runtime/op_context.hpp"
#include "runtime/requantization.hpp"

namespace slmopt::runtime {

struct MatrixView;
struct PackedOperand;
enum class Operand;
class PackedConstants;

// Name -> value bindings of one graph execution; subgraphs see their parents'.
struct Scope {
  std::unordered_map<std::string, Tensor> values;
  // The graph's constants (its initializers, values the session computed
  // once), shared by every run instead of copied into `values`.
  const std::unordered_map<std::string, Tensor>* constants = nullptr;
  const Scope* parent = nullptr;
  const Tensor* find(const std::string& name) const;
};

struct GraphSchedule;

struct RunStats {
  uint64_t peak_activation_bytes = 0;  // largest sum of live intermediate tensors
  uint64_t arena_bytes_used = 0;       // highest arena byte written (run_in_arena)
  uint64_t peak_scratch_bytes = 0;     // most working memory one kernel needed (scratch, dequantized weights)
  int64_t nodes_run = 0;
};

// Sees every value a node produces (calibration collects statistics here).
using Observer = std::function<void(const Node& node, const std::string& name, const Tensor& value)>;

class Session {
 public:
  // Validates that every op in every graph has a kernel; throws Error listing
  // the unsupported ones. `model` must outlive the session.
  explicit Session(const Model& model);
  ~Session();
  Session(Session&&) noexcept;

  // Graph inputs the caller must (or may) feed: those that are not initializers.
  std::vector<ValueInfo> feed_inputs() const;

  // Runs the main graph; returns its outputs by name.
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& feeds, RunStats* stats = nullptr) const;

  void set_observer(Observer observer) { observer_ = std::move(observer); }

  // How QLinearConv and QLinearMatMul requantize (default: ONNX's exact definition).
  void set_requantization(Requantization r) { requantization_ = r; }
  Requantization requantization() const { return requantization_; }

  // Runs once on `feeds` to learn the size and lifetime of every value the
  // main graph computes (its outputs live to the end), then places them in
  // one arena. The plan holds for inputs of the same shapes.
  MemoryPlan plan_memory(const std::map<std::string, Tensor>& feeds) const;

  // Runs with every value of the main graph stored at its planned arena
  // offset; stats->arena_bytes_used reports the highest byte written. Throws
  // when a value's size differs from the plan (other input shapes).
  std::map<std::string, Tensor> run_in_arena(const std::map<std::string, Tensor>& feeds, const MemoryPlan& plan,
                                             RunStats* stats = nullptr) const;

  // Runs a subgraph with positional inputs inside `outer` (If, Loop, Scan).
  std::vector<Tensor> run_graph(const Graph& graph, const std::vector<Tensor>& inputs, const Scope* outer,
                                RunStats* stats) const;

  int opset(const std::string& domain) const;

  // A constant operand of a float product (A: outer x k, B: k x outer)
  // packed once for this session (a convolution's or a Linear layer's
  // weights), or nullptr when it is not inside an initializer or the packed
  // copies would pass their budget. The model's initializers must not change
  // while the session is in use.
  const PackedOperand* packed_constant(const MatrixView& v, Operand side, int64_t outer, int64_t k) const;

 private:
  // What the main graph's run records (planning) or where it stores values (arena run).
  struct ArenaHooks {
    std::vector<BufferLifetime>* record = nullptr;
    const MemoryPlan* plan = nullptr;
    std::shared_ptr<Buffer> arena;
    uint64_t used = 0;
  };
  std::vector<Tensor> run_graph_with(const Graph& graph, const std::vector<Tensor>& inputs, const Scope* outer,
                                     RunStats* stats, ArenaHooks* hooks) const;
  std::vector<Tensor> bind_feeds(const std::map<std::string, Tensor>& feeds) const;
  std::map<std::string, Tensor> name_outputs(std::vector<Tensor> outputs) const;

  // Outputs of main-graph nodes whose inputs are all constants (Constant
  // nodes, arithmetic on shape constants), computed once here instead of on
  // every run; the same kernels, so the same bits.
  void precompute_constant_nodes();

  const GraphSchedule& schedule_for(const Graph& graph, std::unique_ptr<GraphSchedule>& local) const;

  const Model& model_;
  std::unordered_map<const Node*, std::vector<Tensor>> precomputed_;
  // Per graph (subgraphs too), what every run of it needs: its constants,
  // each value's last reader, which values to release after each node.
  std::unordered_map<const Graph*, std::unique_ptr<GraphSchedule>> schedules_;
  Observer observer_;
  Requantization requantization_ = Requantization::Exact;
  std::unique_ptr<PackedConstants> packed_constants_;
};

// "Op (domain)" of every node whose op has no kernel, sorted and unique.
std::vector<std::string> unsupported_ops(const Model& model);

}  // namespace slmopt::runtime
