// Runs ONNX's backend node tests (Debian's libonnx-testdata) through the
// reference runtime and compares every output with ONNX's expected values.
//
//   slmopt_conformance [DATA_DIR] [--known FILE] [--verbose] [--filter SUBSTR]
//
// Cases whose ops have no kernel are skipped and counted per op (the to-do
// list). Cases listed in the known-failures file must fail (so the list cannot
// go stale); any other failure makes the exit code non-zero.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include <onnx/onnx_pb.h>

#include "onnx/onnx_io.hpp"
#include "runtime/numeric.hpp"
#include "runtime/session.hpp"

using namespace slmopt;
namespace fs = std::filesystem;

namespace {

// numpy.testing.assert_allclose defaults used by ONNX's backend tests.
constexpr double kRtol = 1e-3;
constexpr double kAtol = 1e-7;

std::string compare(const Tensor& got, const Tensor& want) {
  if (got.dtype() != want.dtype())
    return std::string("type ") + dtype_name(got.dtype()) + ", expected " + dtype_name(want.dtype());
  if (got.shape() != want.shape()) return "shape " + shape_to_string(got.shape()) + ", expected " + shape_to_string(want.shape());
  if (want.dtype() == DType::String) return got.bit_equal(want) ? "" : "string values differ";
  Tensor g = runtime::cast_tensor(got, DType::F64), w = runtime::cast_tensor(want, DType::F64);
  const double* pg = g.data<double>();
  const double* pw = w.data<double>();
  for (int64_t i = 0; i < g.numel(); ++i) {
    if (std::isnan(pw[i]) && std::isnan(pg[i])) continue;
    if (pg[i] == pw[i]) continue;
    if (!(std::abs(pg[i] - pw[i]) <= kAtol + kRtol * std::abs(pw[i])))
      return "element " + std::to_string(i) + " is " + std::to_string(pg[i]) + ", expected " + std::to_string(pw[i]);
  }
  return "";
}

Tensor load_pb(const fs::path& path) {
  onnx::TensorProto t;
  std::ifstream f(path, std::ios::binary);
  if (!t.ParseFromIstream(&f)) throw_bad_input("not a TensorProto", path.string());
  return onnx_format::tensor_from_proto(t, path.parent_path().string());
}

struct Outcome {
  enum Kind { Pass, Fail, Skip } kind;
  std::string detail;
};

Outcome run_case(const fs::path& dir) {
  Model model;
  try {
    model = onnx_format::read_onnx((dir / "model.onnx").string());
  } catch (const Error& e) {
    return {Outcome::Skip, std::string("reader: ") + e.what()};
  }
  auto missing = runtime::unsupported_ops(model);
  if (!missing.empty()) return {Outcome::Skip, missing[0]};
  for (const auto* list : {&model.graph.inputs, &model.graph.outputs})
    for (const auto& v : *list)
      if (!v.opaque_type.empty()) return {Outcome::Skip, "(non-tensor values)"};
  try {
    runtime::Session session(model);
    for (const auto& set : fs::directory_iterator(dir)) {
      if (!set.is_directory() || set.path().filename().string().rfind("test_data_set", 0) != 0) continue;
      std::map<std::string, Tensor> feeds;
      std::vector<ValueInfo> inputs = model.graph.inputs;
      for (size_t i = 0; i < inputs.size(); ++i) {
        fs::path pb = set.path() / ("input_" + std::to_string(i) + ".pb");
        if (fs::exists(pb)) feeds[inputs[i].name] = load_pb(pb);
      }
      auto outputs = session.run(feeds);
      for (size_t i = 0; i < model.graph.outputs.size(); ++i) {
        fs::path pb = set.path() / ("output_" + std::to_string(i) + ".pb");
        if (!fs::exists(pb)) continue;
        std::string diff = compare(outputs.at(model.graph.outputs[i].name), load_pb(pb));
        if (!diff.empty()) return {Outcome::Fail, "output '" + model.graph.outputs[i].name + "': " + diff};
      }
    }
  } catch (const std::exception& e) {
    return {Outcome::Fail, e.what()};
  }
  return {Outcome::Pass, ""};
}

std::map<std::string, std::string> read_known(const std::string& path) {
  std::map<std::string, std::string> known;
  if (path.empty()) return known;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.find(' ');
    known[line.substr(0, space)] = space == std::string::npos ? "" : line.substr(space + 1);
  }
  return known;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = "/usr/share/libonnx-testdata/data/node", known_file, filter;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--known" && i + 1 < argc) known_file = argv[++i];
    else if (a == "--filter" && i + 1 < argc) filter = argv[++i];
    else if (a == "--verbose") verbose = true;
    else data = a;
  }
  if (!fs::exists(data)) {
    std::cerr << "conformance: " << data << " not found (install libonnx-testdata)\n";
    return 2;
  }
  auto known = read_known(known_file);
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(data))
    if (fs::exists(e.path() / "model.onnx") && e.path().filename().string().find(filter) != std::string::npos)
      cases.push_back(e.path());
  std::sort(cases.begin(), cases.end());

  int passed = 0, failed = 0, skipped = 0, expected_failures = 0, unexpected = 0;
  std::map<std::string, int> skipped_ops;
  for (const auto& dir : cases) {
    const std::string name = dir.filename().string();
    Outcome o = run_case(dir);
    const bool is_known = known.count(name) > 0;
    switch (o.kind) {
      case Outcome::Skip:
        ++skipped;
        ++skipped_ops[o.detail];
        break;
      case Outcome::Pass:
        ++passed;
        if (is_known) {
          ++unexpected;
          std::cout << "UNEXPECTED PASS " << name << " (remove it from the known-failures list)\n";
        }
        break;
      case Outcome::Fail:
        ++failed;
        if (is_known) {
          ++expected_failures;
          if (verbose) std::cout << "known failure " << name << ": " << o.detail << "\n";
        } else {
          ++unexpected;
          std::cout << "FAIL " << name << ": " << o.detail << "\n";
        }
        break;
    }
  }
  const int run = passed + failed;
  std::cout << "\nONNX node conformance: " << cases.size() << " cases, " << run << " run, " << passed << " passed ("
            << (cases.empty() ? 0 : 100 * passed / static_cast<int>(cases.size())) << "% of all), " << failed
            << " failed (" << expected_failures << " known), " << skipped << " skipped\n";
  std::cout << "skipped for a missing kernel (op: cases):";
  std::vector<std::pair<int, std::string>> todo;
  for (const auto& [op, n] : skipped_ops) todo.emplace_back(n, op);
  std::sort(todo.rbegin(), todo.rend());
  for (const auto& [n, op] : todo) std::cout << " " << op << ":" << n;
  std::cout << "\n";
  return unexpected ? 1 : 0;
}
