// slmopt simplify IN -o OUT: constant and shape folding, no-op and dead-node
// removal, BatchNormalization folding and (asked for) activation fusion, then
// both models run on the same inputs to show the rewrite changed nothing
// (bit for bit, or within the stated tolerance where BN folding rounds).
#include <iostream>
#include <memory>

#include "cli_common.hpp"
#include "core/error.hpp"
#include "model_io.hpp"
#include "passes/simplify.hpp"
#include "runtime/session.hpp"
#include "samples.hpp"

namespace slmopt::cli {
namespace {

// Folding BatchNormalization into a Conv's weights rounds each product once
// instead of twice; through a few dozen layers that stays near 1e-5 (PP-OCRv4
// det: 1.0e-5 on random inputs). A relative L2 error past this is a bug.
constexpr double kFoldTolerance = 1e-4;

// Random inputs for the check: a symbolic dim (other than the batch) of 1
// is too small for most convolutions and windows; larger ones are tried.
constexpr int64_t kSymbolicSizes[] = {1, 64, 512};

std::vector<ValueInfo> with_symbolic_dims(std::vector<ValueInfo> inputs, int64_t size) {
  for (auto& v : inputs)
    if (v.shape)
      for (size_t i = 0; i < v.shape->size(); ++i)
        if (!(*v.shape)[i].is_fixed()) (*v.shape)[i] = Dim{i == 0 ? 1 : size, {}, {}};
  return inputs;
}

struct SimplifyCliOptions {
  std::string input;
  std::string output;
  std::vector<std::string> input_shapes;
  bool no_fold_bn = false;
  bool fuse_activations = false;
  bool no_check = false;
  bool allow_empty = false;
  DataOptions data;
};

// "name=1,3,224,224" binds an input; "batch=1" a symbolic dim of the inputs.
void parse_input_shape(const std::string& text, const Model& model, passes::SimplifyOptions& options) {
  const auto eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw_usage("--input-shape '" + text + "': expected NAME=D1,D2,... or SYMBOL=D");
  const std::string name = text.substr(0, eq);
  std::vector<int64_t> dims;
  size_t pos = eq + 1;
  while (pos <= text.size()) {
    const auto comma = std::min(text.find(',', pos), text.size());
    const std::string part = text.substr(pos, comma - pos);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (part.empty() || used != part.size() || v < 0)
      throw_usage("--input-shape '" + text + "': '" + part + "' is not a dim (0 or more)");
    dims.push_back(v);
    pos = comma + 1;
  }
  bool is_input = false;
  for (const auto& v : model.graph.inputs) is_input = is_input || v.name == name;
  if (is_input) {
    options.input_shapes[name] = dims;
  } else if (dims.size() == 1) {
    options.dims[name] = dims[0];
  } else {
    throw_usage("--input-shape '" + text + "': the model has no input named '" + name + "'");
  }
}

struct CheckResult {
  std::string status;  // "bit-exact", "within tolerance", "not checked"
  std::string why;     // for "not checked"
  std::vector<passes::OutputDifference> outputs;
};

CheckResult check(const Model& before, const Model& after, const passes::SimplifyReport& report,
                  const SimplifyCliOptions& o) {
  CheckResult result;
  const bool asked = !o.data.dir.empty() || !o.data.inputs.empty() || o.data.random > 0;
  const auto inputs = runtime::Session(after).feed_inputs();
  if (asked) {
    result.outputs = passes::compare_runs(before, after, load_requested_samples(o.data, inputs));
  } else {
    for (int64_t size : kSymbolicSizes) {
      try {
        result.outputs = passes::compare_runs(before, after, calib::random_samples(with_symbolic_dims(inputs, size), 2, o.data.seed));
        result.why.clear();
        break;
      } catch (const Error& e) {
        // Random inputs may not be valid ones (a sample rate, token ids): say so.
        if (e.kind() == ErrorKind::Internal) throw;
        if (result.why.empty()) result.why = e.what();
      }
    }
    if (!result.why.empty()) {
      result.status = "not checked";
      return result;
    }
  }
  bool identical = true;
  double worst = 0;
  std::string worst_name;
  for (const auto& d : result.outputs) {
    identical = identical && d.identical;
    if (d.rel_l2 >= worst) worst = d.rel_l2, worst_name = d.name;
  }
  if (identical) {
    result.status = "bit-exact";
  } else if (!report.exact() && worst <= kFoldTolerance) {
    result.status = "within tolerance";
  } else {
    throw_internal("the simplified model's output '" + worst_name + "' differs from the original's (rel. L2 " +
                   std::to_string(worst) + (report.exact() ? ", every rewrite should be exact" : "") +
                   "); nothing written. Please report it; --no-check writes it anyway");
  }
  return result;
}

void run_simplify(const SimplifyCliOptions& o, const GlobalOptions& global) {
  const Model original = load_model(o.input);
  passes::SimplifyOptions options;
  for (const auto& s : o.input_shapes) parse_input_shape(s, original, options);
  options.fold_batch_norm = !o.no_fold_bn;
  options.fuse_activations = o.fuse_activations;
  Model model = original;
  const passes::SimplifyReport report = passes::simplify(model, options);
  std::vector<std::string> warnings;
  if (!report.changed()) {
    const std::string what = o.input + ": nothing to simplify (no constant to fold, no no-op, no dead node" +
                             std::string(options.fold_batch_norm ? ", no Conv + BatchNormalization" : "") + ")";
    if (!o.allow_empty) throw_usage(what + "; --allow-empty writes it unchanged");
    warnings.push_back(what);
  }
  CheckResult checked;
  if (o.no_check) checked.status = "not checked";
  else checked = check(original, model, report, o);
  if (checked.status == "not checked" && !o.no_check)
    warnings.push_back("not checked: the models could not run on random inputs (" + checked.why +
                       "); give --data or --input to check on real ones");
  save_model(model, o.output);

  if (global.json) {
    nlohmann::ordered_json outputs = nlohmann::ordered_json::array();
    for (const auto& d : checked.outputs)
      outputs.push_back({{"name", d.name}, {"identical", d.identical}, {"max_abs", d.max_abs}, {"rel_l2", d.rel_l2}});
    print_json({{"input", o.input},
                {"output", o.output},
                {"nodes_before", report.nodes_before},
                {"nodes_after", report.nodes_after},
                {"initializer_bytes_before", report.initializer_bytes_before},
                {"initializer_bytes_after", report.initializer_bytes_after},
                {"rewrites", report.lines()},
                {"exact", report.exact()},
                {"check", checked.status},
                {"outputs", outputs},
                {"warnings", warnings}});
    return;
  }
  if (global.quiet) return;
  for (const auto& w : warnings) std::cerr << "warning: " << w << "\n";
  for (const auto& line : report.lines()) std::cerr << "  " << line << "\n";
  std::cerr << "nodes " << report.nodes_before << " -> " << report.nodes_after << ", weights "
            << human_bytes(static_cast<uint64_t>(report.initializer_bytes_before)) << " -> "
            << human_bytes(static_cast<uint64_t>(report.initializer_bytes_after)) << "; outputs " << checked.status;
  if (checked.status == "within tolerance") {
    double worst = 0;
    for (const auto& d : checked.outputs) worst = std::max(worst, d.rel_l2);
    std::cerr << " (worst rel. L2 " << worst << ", BatchNormalization folding rounds)";
  }
  std::cerr << "\nwrote " << o.output << "\n";
}

}  // namespace

void setup_simplify(CLI::App& app, const GlobalOptions& global) {
  auto opts = std::make_shared<SimplifyCliOptions>();
  auto* cmd = app.add_subcommand("simplify", "Fold constants and shapes, remove no-ops and dead nodes, fold BatchNormalization");
  cmd->add_option("input", opts->input, "Input model")->required();
  cmd->add_option("-o,--output", opts->output, "Output model (.onnx or .slm)")->required();
  cmd->add_option("--input-shape", opts->input_shapes,
                  "NAME=D1,D2,... fixes an input's shape, SYMBOL=D a symbolic dim of the inputs; repeat")
      ->type_name("NAME=DIMS");
  cmd->add_flag("--no-fold-bn", opts->no_fold_bn, "Keep BatchNormalization nodes (folding them is not bit-exact)");
  cmd->add_flag("--fuse-activations", opts->fuse_activations,
                "Fuse Relu, LeakyRelu, Sigmoid, Tanh, Clip, HardSigmoid into the Conv before them (com.microsoft FusedConv)");
  cmd->add_flag("--no-check", opts->no_check, "Do not run both models to compare their outputs");
  cmd->add_flag("--allow-empty", opts->allow_empty, "Write the model even when nothing could be simplified");
  add_data_options(*cmd, opts->data);
  cmd->callback([opts, &global] { run_simplify(*opts, global); });
}

}  // namespace slmopt::cli
