// Helpers shared by the tests: scratch folders, seeded random tensors, running
// the CLI, and locating the downloaded real models.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <string>

#include "core/ir.hpp"

namespace slmopt::test {

// A fresh folder under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  // Names of every entry in the folder (to prove nothing partial was left).
  std::vector<std::string> entries() const;

 private:
  std::filesystem::path path_;
};

// Seeded normal values, and an f32 tensor of them.
std::vector<float> gaussian_values(size_t n, uint32_t seed, float sd = 1.0f);
Tensor gaussian_tensor(std::vector<int64_t> shape, uint32_t seed, float sd = 1.0f);
// ||a - b|| / ||a|| over two f32 tensors of one size.
double relative_error(const Tensor& a, const Tensor& b);

// `count` input vectors of width n with strongly correlated, unevenly scaled
// channels, as real activations have (row-major count x n).
std::vector<float> correlated_inputs(int64_t count, int64_t n, uint32_t seed);

// A tensor of `dtype` filled with seeded random bytes (strings: random words).
Tensor random_tensor(DType dtype, std::vector<int64_t> shape, uint32_t seed);

// y = OP(x, w): one node reading the f32 input "x" (of `x_shape`, or of unknown
// shape when empty) and the initializer "w".
Model single_node_model(const std::string& op, Tensor w, const std::vector<int64_t>& x_shape = {});

void write_bytes(const std::string& path, const std::string& bytes);
std::string read_bytes(const std::string& path);

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs the slmopt binary with `args` (shell-quoted by the caller) and
// environment assignments `env` ("NAME=value ...", also quoted by the caller).
CommandResult run_slmopt(const std::string& args, const std::string& env = "");

// Folder of the real openWakeWord ONNX models (scripts/fetch-testdata.sh), or
// nullopt. When SLMOPT_REQUIRE_TESTDATA=1 a missing folder fails the test.
std::optional<std::filesystem::path> real_models_dir();
// Folder of models from other exporters (PaddlePaddle's PP-OCR, Silero VAD v5
// and legacy; scripts/fetch-testdata.sh), or nullopt as real_models_dir.
std::optional<std::filesystem::path> more_models_dir();
// JSON facts about the real models written by ONNX's Python API
// (scripts/model_facts.py); nullopt when not generated.
std::optional<std::filesystem::path> model_facts_file();

// 4 s of speech-like audio at 16 kHz in int16 range, shape [1, 64000], seeded.
Tensor speech_like_audio();

// Real synthesized speech: espeak-ng speaks each phrase (voice, words per
// minute and pitch varied by `variant`), resampled from 22,050 Hz to 16 kHz
// in int16 range, phrases joined by 0.3 s of quiet noise; shape [1, n].
// nullopt (with a warning, or a failure under SLMOPT_REQUIRE_TESTDATA=1)
// when espeak-ng is not installed.
std::optional<Tensor> spoken_audio(const std::vector<std::string>& phrases, int variant);

// Runs a one-input model and returns its first output.
Tensor run1(const Model& model, const Tensor& x);
// openWakeWord's front end on `audio` (melspectrogram.onnx of `models_dir`):
// mel features scaled (x / 10 + 2) in 76-frame windows, hop 8: [n, 76, 32, 1].
Tensor mel_windows(const std::filesystem::path& models_dir, const Tensor& audio);

inline std::string test_data(const std::string& name) { return std::string(SLMOPT_TEST_DATA) + "/" + name; }

}  // namespace slmopt::test
