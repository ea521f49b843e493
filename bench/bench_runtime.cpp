// Latency of slmopt's runtime next to ONNX Runtime's on the same models, inputs
// and machine, in the same run (ONNX Runtime through onnxruntime-node, one
// thread each). Prints one row per workload and the ratio ours / ORT.
//
//   slmopt_bench MODELS_DIR ORT_NODE_MODULES [REPEAT]
//
// With SLMOPT_MORE_MODELS set (scripts/fetch-testdata.sh), PaddlePaddle's
// PP-OCR models and Silero VAD v5/legacy too. The "simplified" column is our
// runtime on the model after `slmopt simplify` (BatchNormalization folded).
#include <Eigen/Core>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "calib/dataset.hpp"
#include "core/memory_limit.hpp"
#include "calib/npy.hpp"
#include "model_io.hpp"
#include "onnx/onnx_io.hpp"
#include "passes/simplify.hpp"
#include "runtime/session.hpp"

using namespace slmopt;
namespace fs = std::filesystem;

namespace {

// Both the runtime's own kernels (OpenMP) and Eigen's products.
void set_threads(int n) {
  omp_set_num_threads(n);
  Eigen::setNbThreads(n);
}

double ours_ms(const Model& m, const std::map<std::string, Tensor>& feeds, int repeat) {
  runtime::Session s(m);
  s.run(feeds);  // warm-up
  std::vector<double> times;
  for (int i = 0; i < repeat; ++i) {
    auto start = std::chrono::steady_clock::now();
    s.run(feeds);
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

double ort_ms(const std::string& modules, const std::string& model, const std::map<std::string, Tensor>& feeds,
              int repeat, const fs::path& tmp) {
  std::string cmd = "NODE_PATH='" + modules + "' node '" + std::string(SLMOPT_SOURCE_DIR) + "/tests/oracle/ort_run.js' '" +
                    model + "' '" + (tmp / "out").string() + "' --repeat " + std::to_string(repeat);
  int k = 0;
  for (const auto& [name, t] : feeds) {
    std::string file = (tmp / ("in" + std::to_string(k++) + ".npy")).string();
    calib::write_npy(file, t);
    cmd += " '" + name + "=" + file + "'";
  }
  cmd += " > '" + (tmp / "ort.json").string() + "'";
  if (std::system(cmd.c_str()) != 0) return -1;
  std::ifstream f(tmp / "ort.json");
  return nlohmann::json::parse(f)["latency_ms"].get<double>();
}

// A transformer-sized feed-forward block: [tokens, 576] x [576, 1536] MatMul,
// then Gemm back to 576 (SmolLM-135M's widths).
Model ffn_model() {
  Model m;
  m.opsets = {{"", 17}};
  m.graph.name = "ffn";
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0, 0.02f);
  Tensor up(DType::F32, {576, 1536}), down(DType::F32, {576, 1536});
  for (int64_t i = 0; i < up.numel(); ++i) up.mutable_data<float>()[i] = n(rng);
  for (int64_t i = 0; i < down.numel(); ++i) down.mutable_data<float>()[i] = n(rng);
  m.graph.initializers = {{"up", up, ""}, {"down", down, ""}};
  ValueInfo x;
  x.name = "x";
  x.dtype = DType::F32;
  x.shape = std::vector<Dim>{Dim{64, "", ""}, Dim{576, "", ""}};
  m.graph.inputs = {x};
  Node mm;
  mm.op_type = "MatMul";
  mm.name = "up_proj";
  mm.inputs = {"x", "up"};
  mm.outputs = {"h"};
  Node gemm;
  gemm.op_type = "Gemm";
  gemm.name = "down_proj";
  gemm.inputs = {"h", "down"};
  gemm.outputs = {"y"};
  Attribute tb;
  tb.name = "transB";
  tb.type = AttrType::Int;
  tb.i = 1;
  gemm.attributes = {tb};
  m.graph.nodes = {mm, gemm};
  ValueInfo y;
  y.name = "y";
  y.dtype = DType::F32;
  m.graph.outputs = {y};
  return m;
}

// Where our time goes, by op type: the time between one node's result and
// the next (an observer sees every value as it is made), summed over runs.
std::vector<std::pair<double, std::string>> op_breakdown(const Model& m, const std::map<std::string, Tensor>& feeds,
                                                         int repeat) {
  runtime::Session s(m);
  std::map<std::string, double> ms;
  auto last = std::chrono::steady_clock::now();
  s.set_observer([&](const Node& node, const std::string&, const Tensor&) {
    const auto now = std::chrono::steady_clock::now();
    ms[node.op_type] += std::chrono::duration<double, std::milli>(now - last).count();
    last = now;
  });
  for (int i = 0; i < repeat; ++i) {
    last = std::chrono::steady_clock::now();
    s.run(feeds);
  }
  double total = 0;
  for (const auto& [op, t] : ms) total += t;
  std::vector<std::pair<double, std::string>> shares;
  for (const auto& [op, t] : ms) shares.emplace_back(100.0 * t / std::max(total, 1e-9), op);
  std::sort(shares.rbegin(), shares.rend());
  return shares;
}

Tensor filled(DType dtype, std::vector<int64_t> shape, uint32_t seed, float scale) {
  Tensor t(dtype, std::move(shape));
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = n(rng);
  return t;
}

// Inputs of the models from other exporters: an image of the size the OCR
// pipeline feeds each model, one 32 ms chunk of 16 kHz audio for the VADs.
std::map<std::string, Tensor> more_model_feeds(const std::string& file) {
  if (file.starts_with("silero")) {
    std::map<std::string, Tensor> f{{"input", filled(DType::F32, {1, 512}, 5, 0.1f)},
                                    {"sr", Tensor::from_values<int64_t>(DType::I64, {}, {16000})}};
    if (file == "silero_vad_v5.onnx") f["state"] = filled(DType::F32, {2, 1, 128}, 6, 0.0f);
    else f["h"] = filled(DType::F32, {2, 1, 64}, 6, 0.0f), f["c"] = filled(DType::F32, {2, 1, 64}, 7, 0.0f);
    return f;
  }
  if (file.find("det") != std::string::npos) return {{"x", filled(DType::F32, {1, 3, 320, 320}, 1, 0.5f)}};
  if (file.find("rec") != std::string::npos) return {{"x", filled(DType::F32, {1, 3, 48, 320}, 2, 0.5f)}};
  return {{"x", filled(DType::F32, {1, 3, 48, 192}, 3, 0.5f)}};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: slmopt_bench MODELS_DIR ORT_NODE_MODULES [REPEAT]\n");
    return 2;
  }
  const fs::path models = argv[1];
  const std::string modules = argv[2];
  const int repeat = argc > 3 ? std::atoi(argv[3]) : 50;
  const fs::path tmp = fs::temp_directory_path() / "slmopt-bench";
  reuse_freed_memory();  // as the slmopt command does
  set_threads(1);  // one thread each, like ORT's intraOpNumThreads = 1
  fs::create_directories(tmp);

  std::vector<std::pair<std::string, std::string>> workloads;
  for (const char* name : {"melspectrogram.onnx", "embedding_model.onnx", "alexa_v0.1.onnx", "hey_jarvis_v0.1.onnx",
                           "hey_mycroft_v0.1.onnx", "hey_rhasspy_v0.1.onnx", "timer_v0.1.onnx", "weather_v0.1.onnx"})
    workloads.emplace_back(name, (models / name).string());
  onnx_format::write_onnx(ffn_model(), (tmp / "ffn.onnx").string());
  workloads.emplace_back("ffn 64x576x1536 (MatMul+Gemm)", (tmp / "ffn.onnx").string());
  // A decoder's prefill: attention's masks, softmax and KV concatenation at 256 tokens.
  const std::string llama = std::string(SLMOPT_SOURCE_DIR) + "/tests/data/stories260K";
  onnx_format::write_onnx(load_model(llama), (tmp / "stories260K.onnx").string());
  workloads.emplace_back("stories260K prefill, 256 tokens", (tmp / "stories260K.onnx").string());

  std::map<std::string, std::map<std::string, Tensor>> fixed_feeds;
  if (const char* more = std::getenv("SLMOPT_MORE_MODELS"))
    for (const char* name : {"ch_ppocr_mobile_v2.0_cls_infer.onnx", "ch_PP-OCRv4_det_infer.onnx",
                             "ch_PP-OCRv4_rec_infer.onnx", "silero_vad_v5.onnx", "silero_vad_legacy.onnx"}) {
      workloads.emplace_back(name, (fs::path(more) / name).string());
      fixed_feeds[name] = more_model_feeds(name);
    }

  std::printf("%-34s %12s %12s %8s %12s %8s\n", "workload", "slmopt ms", "ORT ms", "ratio", "simplified", "ratio");
  for (const auto& [label, path] : workloads) {
    Model m = onnx_format::read_onnx(path);
    // Simplified for the shapes it is fed, as `simplify --input-shape` does.
    Model simple = m;
    passes::SimplifyOptions bound;
    if (auto it = fixed_feeds.find(label); it != fixed_feeds.end())
      for (const auto& [name, t] : it->second) bound.input_shapes[name] = t.shape();
    passes::simplify(simple, bound);
    if (auto it = fixed_feeds.find(label); it != fixed_feeds.end()) {
      const double ours = ours_ms(m, it->second, repeat), ort = ort_ms(modules, path, it->second, repeat, tmp);
      const double simplified = ours_ms(simple, it->second, repeat);
      std::printf("%-34s %12.3f %12.3f %8.2f %12.3f %8.2f\n", label.c_str(), ours, ort, ort > 0 ? ours / ort : 0.0,
                  simplified, ort > 0 ? simplified / ort : 0.0);
      std::string top = "  ours by op (simplified):";
      const auto shares = op_breakdown(simple, it->second, std::max(1, repeat / 5));
      for (size_t k = 0; k < std::min<size_t>(5, shares.size()); ++k)
        top += " " + shares[k].second + " " + std::to_string(static_cast<int>(shares[k].first + 0.5)) + "%";
      std::printf("%s\n", top.c_str());
      continue;
    }
    runtime::Session probe(m);
    auto inputs = probe.feed_inputs();
    for (auto& v : inputs)  // symbolic dims: batch 1, audio 1 s
      for (auto& d : *v.shape)
        if (!d.is_fixed()) d.value = d.param == "samples" ? 16000 : d.param == "sequence" ? 256 : d.param == "past_sequence" ? 0 : 1;
    auto feeds = calib::random_samples(inputs, 1, 3).at(0);
    if (auto ids = feeds.find("input_ids"); ids != feeds.end())  // token ids within the vocabulary
      for (int64_t i = 0; i < ids->second.numel(); ++i) ids->second.mutable_data<int64_t>()[i] = (i * 7919 + 1) % 512;
    if (label == "melspectrogram.onnx")
      for (int64_t i = 0; i < feeds.begin()->second.numel(); ++i) feeds.begin()->second.mutable_data<float>()[i] *= 3000;
    const double ours = ours_ms(m, feeds, repeat);
    const double ort = ort_ms(modules, path, feeds, repeat, tmp);
    const double simplified = ours_ms(simple, feeds, repeat);
    std::printf("%-34s %12.3f %12.3f %8.2f %12.3f %8.2f\n", label.c_str(), ours, ort, ort > 0 ? ours / ort : 0.0,
                simplified, ort > 0 ? simplified / ort : 0.0);
    if (label.rfind("ffn", 0) == 0) {
      set_threads(omp_get_num_procs());
      std::printf("%-34s %12.3f %12s\n", "  same, slmopt on all cores", ours_ms(m, feeds, repeat), "");
      set_threads(1);
    }
  }
  fs::remove_all(tmp);
  return 0;
}
