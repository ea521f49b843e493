// slmopt run MODEL: run a model on given inputs, write its outputs as .npy and
// report latency and peak activation memory.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>

#include "calib/npy.hpp"
#include "cli_common.hpp"
#include "core/atomic_file.hpp"
#include "model_io.hpp"
#include "runtime/session.hpp"
#include "samples.hpp"

namespace slmopt::cli {
namespace {

struct RunOptions {
  std::string model;
  DataOptions data;
  std::string output_dir;
  int repeat = 1;
  std::string requantize = "exact";
};

// Output names may hold any character; file names get a safe form.
std::string file_name_for(const std::string& name) {
  std::string s;
  for (char ch : name) s += (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.') ? ch : '_';
  return s.empty() ? "output" : s;
}

void run_run(const RunOptions& o, const GlobalOptions& global) {
  Model model = load_model(o.model);
  runtime::Session session(model);
  session.set_requantization(*runtime::requantization_from_name(o.requantize));
  auto samples = load_requested_samples(o.data, session.feed_inputs());
  runtime::RunStats stats;
  double total_ms = 0;
  int runs = 0;
  nlohmann::ordered_json outputs_json = nlohmann::ordered_json::array();
  OutputSet files;  // every .npy appears, or none
  for (size_t i = 0; i < samples.size(); ++i) {
    std::map<std::string, Tensor> outputs;
    for (int r = 0; r < std::max(1, o.repeat); ++r) {
      auto start = std::chrono::steady_clock::now();
      outputs = session.run(samples[i], &stats);
      total_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      ++runs;
    }
    for (const auto& [name, t] : outputs) {
      std::string path;
      if (!o.output_dir.empty()) {
        std::filesystem::path dir = o.output_dir;
        if (samples.size() > 1) dir /= "sample_" + std::to_string(i);
        std::filesystem::create_directories(dir);
        path = (dir / (file_name_for(name) + ".npy")).string();
        calib::write_npy(path, t);
      }
      outputs_json.push_back({{"sample", i}, {"name", name}, {"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}, {"file", path}});
      if (!global.json && !global.quiet)
        std::cout << "sample " << i << "  " << name << "  " << dtype_name(t.dtype()) << " " << shape_to_string(t.shape())
                  << (path.empty() ? "" : "  -> " + path) << "\n";
    }
  }
  files.commit();
  const double mean_ms = runs ? total_ms / runs : 0;
  // The arena a device would reserve for these input shapes.
  const runtime::MemoryPlan plan = session.plan_memory(samples.at(0));
  if (global.json) {
    print_json({{"model", o.model}, {"samples", samples.size()}, {"latency_ms", mean_ms},
                {"peak_activation_bytes", stats.peak_activation_bytes}, {"arena_bytes", plan.arena_bytes},
                {"scratch_bytes", plan.scratch_bytes},
                {"outputs", outputs_json}});
  } else {
    std::cout << "latency    " << mean_ms << " ms per run (" << runs << " runs)\n";
    std::cout << "peak activations " << human_bytes(stats.peak_activation_bytes) << " ("
              << with_thousands(static_cast<int64_t>(stats.peak_activation_bytes)) << " bytes)\n";
    std::cout << "arena      " << human_bytes(plan.arena_bytes) << " (" << with_thousands(static_cast<int64_t>(plan.arena_bytes))
              << " bytes, planned for these input shapes; includes the outputs)\n";
    std::cout << "scratch    " << human_bytes(plan.scratch_bytes) << " (the most working memory one kernel used)\n";
  }
}

}  // namespace

void setup_run(CLI::App& app, GlobalOptions& global) {
  auto opts = std::make_shared<RunOptions>();
  auto* cmd = app.add_subcommand("run", "Run a model and write its outputs as .npy");
  cmd->add_option("model", opts->model, "Model to run")->required();
  add_data_options(*cmd, opts->data);
  cmd->add_option("-o,--output", opts->output_dir, "Folder for the outputs (NAME.npy)");
  cmd->add_option("--repeat", opts->repeat, "Run each sample this many times for the latency figure");
  add_requantize_option(*cmd, opts->requantize, "the model's");
  cmd->callback([opts, &global] { run_run(*opts, global); });
}

}  // namespace slmopt::cli
