#include "dataset.hpp"

#include <algorithm>
#include <filesystem>
#include <random>

#include "npy.hpp"
#include "npz.hpp"
#include "onnx/onnx_io.hpp"

#include <onnx/onnx_pb.h>

namespace slmopt::calib {
namespace fs = std::filesystem;

Tensor read_tensor_file(const std::string& path) {
  if (path.ends_with(".npy")) return read_npy(path);
  if (path.ends_with(".pb")) {
    auto file = MappedFile::open(path);
    onnx::TensorProto proto;
    if (file->size() > (1u << 30) || !proto.ParseFromArray(file->data(), static_cast<int>(file->size())))
      throw_bad_input("not a valid ONNX TensorProto", path);
    try {
      return onnx_format::tensor_from_proto(proto, fs::path(path).parent_path().string());
    } catch (Error& e) {
      e.set_file_if_empty(path);
      throw;
    }
  }
  throw_bad_input("unknown tensor file type (expected .npy or .pb)", path);
}

namespace {

std::vector<fs::path> sorted_dirs(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
  // Natural order: test_data_set_2 before test_data_set_10.
  std::sort(out.begin(), out.end(), [](const fs::path& a, const fs::path& b) {
    auto as = a.filename().string(), bs = b.filename().string();
    return as.size() != bs.size() ? as.size() < bs.size() : as < bs;
  });
  return out;
}

}  // namespace

namespace {
Sample sample_from_npz(const std::string& path, const std::vector<ValueInfo>& inputs) {
  auto arrays = read_npz(path);
  Sample s;
  for (const auto& v : inputs) {
    auto it = arrays.find(v.name);
    if (it == arrays.end()) throw_bad_input("has no array named '" + v.name + "'", path);
    s[v.name] = std::move(it->second);
  }
  return s;
}
}  // namespace

std::vector<Sample> load_samples(const std::string& dir, const std::vector<ValueInfo>& inputs) {
  std::error_code ec;
  if (dir.ends_with(".npz") && fs::is_regular_file(dir, ec)) return {sample_from_npz(dir, inputs)};
  if (!fs::is_directory(dir, ec)) throw_bad_input("not a folder of samples or an .npz file", dir);
  std::vector<Sample> samples;
  std::vector<fs::path> npz_files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".npz") npz_files.push_back(e.path());
  std::sort(npz_files.begin(), npz_files.end());
  for (const auto& f : npz_files) samples.push_back(sample_from_npz(f.string(), inputs));
  if (!samples.empty()) return samples;
  for (const auto& set : sorted_dirs(dir, "test_data_set_")) {
    Sample s;
    for (size_t i = 0; i < inputs.size(); ++i) {
      fs::path pb = set / ("input_" + std::to_string(i) + ".pb");
      if (fs::exists(pb)) s[inputs[i].name] = read_tensor_file(pb.string());
    }
    samples.push_back(std::move(s));
  }
  if (!samples.empty()) return samples;
  for (const auto& sub : sorted_dirs(dir, "")) {
    Sample s;
    for (const auto& v : inputs) {
      fs::path npy = sub / (v.name + ".npy");
      if (!fs::exists(npy)) throw_bad_input("sample folder has no " + v.name + ".npy", sub.string());
      s[v.name] = read_npy(npy.string());
    }
    samples.push_back(std::move(s));
  }
  if (samples.empty()) throw_bad_input("no samples (test_data_set_N/ or sample folders with NAME.npy)", dir);
  return samples;
}

Sample sample_from_pairs(const std::vector<std::string>& pairs, const std::vector<ValueInfo>& inputs) {
  Sample s;
  for (const auto& p : pairs) {
    auto eq = p.find('=');
    if (eq == std::string::npos) {
      if (inputs.size() != 1) throw_usage("--input '" + p + "' needs the form NAME=FILE (the model has several inputs)");
      s[inputs[0].name] = read_tensor_file(p);
      continue;
    }
    s[p.substr(0, eq)] = read_tensor_file(p.substr(eq + 1));
  }
  return s;
}

std::vector<Sample> random_samples(const std::vector<ValueInfo>& inputs, int count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Sample> samples;
  for (int n = 0; n < count; ++n) {
    Sample s;
    for (const auto& v : inputs) {
      if (!v.dtype || !v.shape) throw_bad_input("input '" + v.name + "' has no declared type and shape to draw from");
      std::vector<int64_t> shape;
      for (const auto& d : *v.shape) shape.push_back(d.is_fixed() ? d.value : 1);
      Tensor t(*v.dtype, shape);
      std::uniform_real_distribution<float> uf(-1.0f, 1.0f);
      std::uniform_int_distribution<int> ui(0, 7);
      for (int64_t i = 0; i < t.numel(); ++i) {
        switch (*v.dtype) {
          case DType::F32: t.mutable_data<float>()[i] = uf(rng); break;
          case DType::F64: t.mutable_data<double>()[i] = uf(rng); break;
          case DType::I64: t.mutable_data<int64_t>()[i] = ui(rng); break;
          case DType::I32: t.mutable_data<int32_t>()[i] = ui(rng); break;
          case DType::Bool: t.mutable_data<bool>()[i] = ui(rng) & 1; break;
          default: throw_bad_input(std::string("cannot draw random ") + dtype_name(*v.dtype) + " values for '" + v.name + "'");
        }
      }
      s[v.name] = std::move(t);
    }
    samples.push_back(std::move(s));
  }
  return samples;
}

}  // namespace slmopt::calib
