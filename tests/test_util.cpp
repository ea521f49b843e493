#include <cmath>
#include "test_util.hpp"

#include "onnx/onnx_io.hpp"
#include "runtime/session.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>
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

CommandResult run_slmopt(const std::string& args, const std::string& env) {
  TempDir tmp;
  std::string cmd = (env.empty() ? "" : env + " ") + std::string(SLMOPT_BINARY) + " " + args + " >" + tmp.file("out") + " 2>" + tmp.file("err");
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

std::optional<fs::path> more_models_dir() {
  return required_path("SLMOPT_MORE_MODELS", "more-models", "models from other exporters");
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

namespace {

// Samples of a 16-bit mono PCM WAV file, or empty when it is not one.
std::vector<int16_t> read_wav_pcm16(const std::string& path, int& rate) {
  const std::string b = read_bytes(path);
  auto u32 = [&](size_t at) {
    return static_cast<uint32_t>(static_cast<uint8_t>(b[at])) | static_cast<uint32_t>(static_cast<uint8_t>(b[at + 1])) << 8 |
           static_cast<uint32_t>(static_cast<uint8_t>(b[at + 2])) << 16 | static_cast<uint32_t>(static_cast<uint8_t>(b[at + 3])) << 24;
  };
  if (b.size() < 12 || b.compare(0, 4, "RIFF") != 0 || b.compare(8, 4, "WAVE") != 0) return {};
  std::vector<int16_t> pcm;
  for (size_t at = 12; at + 8 <= b.size();) {
    const std::string id = b.substr(at, 4);
    const size_t len = std::min<size_t>(u32(at + 4), b.size() - at - 8);
    if (id == "fmt " && len >= 16) rate = static_cast<int>(u32(at + 12));
    if (id == "data") {
      pcm.resize(len / 2);
      std::memcpy(pcm.data(), b.data() + at + 8, pcm.size() * 2);
      return pcm;
    }
    at += 8 + len + (len & 1);
  }
  return {};
}

}  // namespace

std::optional<Tensor> spoken_audio(const std::vector<std::string>& phrases, int variant) {
  if (std::system("command -v espeak-ng >/dev/null 2>&1") != 0) {
    const char* require = std::getenv("SLMOPT_REQUIRE_TESTDATA");
    if (require && std::string(require) == "1") FAIL("espeak-ng is not installed; run scripts/setup-deps.sh");
    WARN("espeak-ng is not installed; skipping (run scripts/setup-deps.sh)");
    return std::nullopt;
  }
  static const char* voices[] = {"en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-us+f3", "en-gb+m3"};
  TempDir tmp;
  std::vector<float> out;
  std::mt19937 rng(static_cast<uint32_t>(variant) + 1);
  std::normal_distribution<float> quiet(0, 30);
  for (size_t i = 0; i < phrases.size(); ++i) {
    const size_t v = (static_cast<size_t>(variant) * 7 + i) % std::size(voices);
    const int speed = 140 + static_cast<int>((static_cast<size_t>(variant) * 13 + i * 17) % 60);
    const int pitch = 30 + static_cast<int>((static_cast<size_t>(variant) * 11 + i * 23) % 40);
    const std::string wav = tmp.file("p" + std::to_string(i) + ".wav");
    std::string text = phrases[i];
    for (char& c : text)
      if (c == '\'' || c == '"' || c == '\\' || c == '$' || c == '`') c = ' ';
    const std::string cmd = std::string("espeak-ng -v ") + voices[v] + " -s " + std::to_string(speed) + " -p " +
                            std::to_string(pitch) + " -w '" + wav + "' '" + text + "' >/dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
    int rate = 0;
    const std::vector<int16_t> pcm = read_wav_pcm16(wav, rate);
    REQUIRE(!pcm.empty());
    REQUIRE(rate > 0);
    for (int k = 0; k < 4800; ++k) out.push_back(quiet(rng));
    // Linear interpolation to 16 kHz: enough for calibration statistics.
    const double step = static_cast<double>(rate) / 16000.0;
    for (double t = 0; t + 1 < static_cast<double>(pcm.size()); t += step) {
      const auto k = static_cast<size_t>(t);
      const double f = t - static_cast<double>(k);
      out.push_back(static_cast<float>((1 - f) * pcm[k] + f * pcm[k + 1]) + quiet(rng));
    }
  }
  for (int k = 0; k < 4800; ++k) out.push_back(quiet(rng));
  return Tensor::from_values<float>(DType::F32, {1, static_cast<int64_t>(out.size())}, out);
}

Tensor run1(const Model& m, const Tensor& x) {
  runtime::Session s(m);
  return s.run({{m.graph.inputs.at(0).name, x}}).at(m.graph.outputs.at(0).name);
}

Tensor mel_windows(const fs::path& dir, const Tensor& audio) {
  const Tensor mel = run1(onnx_format::read_onnx((dir / "melspectrogram.onnx").string()), audio);
  const int64_t frames = mel.shape()[2], n = (frames - 76) / 8 + 1;
  Tensor windows(DType::F32, {n, 76, 32, 1});
  for (int64_t w = 0; w < n; ++w)
    for (int64_t f = 0; f < 76; ++f)
      for (int64_t b = 0; b < 32; ++b)
        windows.mutable_data<float>()[(w * 76 + f) * 32 + b] = mel.data<float>()[(w * 8 + f) * 32 + b] / 10.0f + 2.0f;
  return windows;
}

std::vector<float> gaussian_values(size_t n, uint32_t seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

double relative_error(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = static_cast<double>(a.data<float>()[i]) - b.data<float>()[i];
    num += d * d;
    den += static_cast<double>(a.data<float>()[i]) * a.data<float>()[i];
  }
  return std::sqrt(num / den);
}

Tensor gaussian_tensor(std::vector<int64_t> shape, uint32_t seed, float sd) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return Tensor::from_values<float>(DType::F32, shape, gaussian_values(static_cast<size_t>(n), seed, sd));
}

// A layer's inputs with strongly correlated, unevenly scaled channels, as real activations have.
std::vector<float> correlated_inputs(int64_t count, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> x(static_cast<size_t>(count * n));
  const int64_t factors = 8;
  std::vector<float> mix(static_cast<size_t>(factors * n)), scale(static_cast<size_t>(n));
  for (auto& v : mix) v = nd(rng);
  for (int64_t i = 0; i < n; ++i) scale[static_cast<size_t>(i)] = std::exp(nd(rng));
  for (int64_t r = 0; r < count; ++r) {
    float f[factors];
    for (auto& v : f) v = nd(rng);
    for (int64_t i = 0; i < n; ++i) {
      float v = 0.3f * nd(rng);
      for (int64_t k = 0; k < factors; ++k) v += f[k] * mix[static_cast<size_t>(k * n + i)];
      x[static_cast<size_t>(r * n + i)] = v * scale[static_cast<size_t>(i)];
    }
  }
  return x;
}

}  // namespace slmopt::test

namespace slmopt::test {

Model single_node_model(const std::string& op, Tensor w, const std::vector<int64_t>& x_shape) {
  Model m;
  m.opsets.push_back({"", 17});
  ValueInfo x, y;
  x.name = "x";
  x.dtype = DType::F32;
  if (!x_shape.empty()) {
    x.shape = std::vector<Dim>(x_shape.size());
    for (size_t i = 0; i < x_shape.size(); ++i) (*x.shape)[i].value = x_shape[i];
  }
  y.name = "y";
  y.dtype = DType::F32;
  m.graph.inputs.push_back(x);
  m.graph.outputs.push_back(y);
  m.graph.initializers.push_back({"w", std::move(w), ""});
  Node node;
  node.op_type = op;
  node.name = "node";
  node.inputs = {"x", "w"};
  node.outputs = {"y"};
  m.graph.nodes.push_back(node);
  return m;
}

}  // namespace slmopt::test
