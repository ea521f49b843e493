#include <cmath>
#include "test_util.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace slmopt::test {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string templ = (fs::temp_directory_path() / "slmopt-test-XXXXXX").string();
  if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::vector<std::string> TempDir::entries() const {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(path_)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

Tensor random_tensor(DType dtype, std::vector<int64_t> shape, uint32_t seed) {
  std::mt19937 rng(seed);
  if (dtype == DType::String) {
    Tensor t(dtype, shape);
    std::vector<std::string> words;
    for (int64_t i = 0; i < t.numel(); ++i) {
      std::string word = std::to_string(rng() % 1000);
      word += "\xc3\xa9";  // non-ASCII bytes must survive too
      words.push_back(std::move(word));
    }
    return Tensor::from_strings(std::move(shape), std::move(words));
  }
  Tensor t(dtype, std::move(shape));
  uint8_t* p = t.mutable_bytes();
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(rng());
  if (dtype == DType::Bool)
    for (size_t i = 0; i < t.nbytes(); ++i) p[i] &= 1;
  return t;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

CommandResult run_slmopt(const std::string& args) {
  TempDir tmp;
  std::string cmd = std::string(SLMOPT_BINARY) + " " + args + " >" + tmp.file("out") + " 2>" + tmp.file("err");
  int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_bytes(tmp.file("out"));
  r.err = read_bytes(tmp.file("err"));
  return r;
}

namespace {
std::optional<fs::path> required_path(const char* env, const fs::path& fallback_leaf, const char* what) {
  fs::path dir;
  if (const char* v = std::getenv(env)) dir = v;
  else if (const char* home = std::getenv("HOME")) dir = fs::path(home) / ".cache/slmopt" / fallback_leaf;
  std::error_code ec;
  if (!dir.empty() && fs::exists(dir, ec)) return dir;
  const char* require = std::getenv("SLMOPT_REQUIRE_TESTDATA");
  if (require && std::string(require) == "1") FAIL(what << " not found at '" << dir.string() << "'; run scripts/fetch-testdata.sh");
  WARN(what << " not found; skipping (run scripts/fetch-testdata.sh)");
  return std::nullopt;
}
}  // namespace

std::optional<fs::path> real_models_dir() {
  return required_path("SLMOPT_MODELS", "openwakeword/package/models", "real ONNX models");
}

std::optional<fs::path> model_facts_file() {
  return required_path("SLMOPT_MODEL_FACTS", "openwakeword/model_facts.json", "model facts JSON");
}

// 4 s of a voiced, pitch-gliding sound with formant-like amplitude changes and
// a little noise, at 16 kHz in int16 range, as openWakeWord's front end expects.
Tensor speech_like_audio() {
  const int n = 64000;
  Tensor audio(DType::F32, {1, n});
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0, 200);
  double phase = 0;
  for (int i = 0; i < n; ++i) {
    const double t = i / 16000.0;
    const double pitch = 120 + 60 * std::sin(2 * M_PI * 1.3 * t);
    phase += 2 * M_PI * pitch / 16000.0;
    double v = 0;
    for (int h = 1; h <= 8; ++h) v += std::sin(h * phase) / h * (1 + 0.8 * std::sin(2 * M_PI * (3 + h) * t));
    const double envelope = 0.5 + 0.5 * std::sin(2 * M_PI * 2.5 * t);
    audio.mutable_data<float>()[i] = static_cast<float>(6000 * envelope * v) + noise(rng);
  }
  return audio;
}

}  // namespace slmopt::test
