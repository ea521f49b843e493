// Quantization-aware distillation (lib/train): the trainer's forward pass is
// the runtime's, its gradient is the loss's (finite differences), and
// training for the quantizer lowers the quantized model's KL from the
// original on text it did not train on, deterministically.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "lm/decoder_runner.hpp"
#include "lm/sampler.hpp"
#include "model_io.hpp"
#include "passes/quantize.hpp"
#include "test_util.hpp"
#include "train/distill.hpp"
#include "train/fake_quantize.hpp"
#include "train/llama_backprop.hpp"

using namespace slmopt;

namespace {

// Sequences of `length` tokens the model samples itself from BOS (temperature 1).
std::vector<std::vector<int64_t>> sampled(const Model& m, int count, int64_t length, uint64_t seed) {
  std::vector<std::vector<int64_t>> out;
  for (int i = 0; i < count; ++i) {
    lm::DecoderRunner runner(m);
    lm::Sampler sampler({1.0f, 0, 1.0f, seed + static_cast<uint64_t>(i)});
    std::vector<int64_t> seq = {1};
    std::vector<float> logits = runner.feed(seq);
    while (static_cast<int64_t>(seq.size()) < length) {
      seq.push_back(sampler.next(std::span<const float>(logits).last(static_cast<size_t>(runner.vocab()))));
      logits = runner.feed(std::span<const int64_t>(&seq.back(), 1));
    }
    out.push_back(seq);
  }
  return out;
}

// Every weight under `spec`, rounded to nearest (what --finetune trains for).
passes::QuantizeConfig rtn_config(const std::string& spec) {
  passes::QuantizeConfig config;
  config.default_spec = spec;
  config.algorithm = "rtn";
  return config;
}

// Mean KL of the fake-quantized model from the original over the sequences.
struct MatrixBits {
  double weights = 0, per_weight = 0;
  std::set<std::string> schemes;
};

// Bits per weight over the quantized tensors of a `quantize --json` report.
MatrixBits matrix_bits(const nlohmann::json& report) {
  MatrixBits m;
  double bits = 0;
  for (const auto& t : report.at("tensors")) {
    if (t.at("action") == "keep f32") continue;
    double n = 1;
    for (const auto& d : t.at("shape")) n *= d.get<double>();
    bits += t.at("bits_per_weight").get<double>() * n;
    m.weights += n;
    m.schemes.insert(t.at("action").get<std::string>());
  }
  m.per_weight = m.weights > 0 ? bits / m.weights : 0;
  return m;
}

double quantized_kl(const train::LlamaWeights& original, const train::LlamaWeights& trained, const train::FakeQuantize& fake,
                    const std::vector<std::vector<int64_t>>& sequences) {
  std::vector<train::Matrix> effective(trained.values.size());
  for (size_t i = 0; i < effective.size(); ++i) fake(i, trained.values[i], effective[i]);
  std::vector<train::Matrix> unused(effective.size());
  for (size_t i = 0; i < effective.size(); ++i) unused[i] = train::Matrix::Zero(effective[i].rows(), effective[i].cols());
  double kl = 0;
  for (const auto& seq : sequences) {
    const train::Matrix teacher = train::log_softmax_rows(train::llama_logits(original.layout, original.values, seq));
    kl += train::llama_distill_step(original.layout, effective, seq, teacher, 0.0f, unused) / static_cast<double>(sequences.size());
  }
  return kl;
}

}  // namespace

TEST_CASE("the trainer's Llama forward pass equals the runtime's, from safetensors and from llama2.c") {
  const std::vector<int64_t> tokens = {1, 403, 407, 261, 378, 300, 330, 418, 275, 270, 267, 352, 29, 401, 396, 267};
  for (const std::string file : {"stories260K", "stories260K/stories260K.bin"}) {
    INFO(file);
    const Model m = load_model(test::test_data(file));
    const train::LlamaWeights w = train::llama_weights(m);
    CHECK(w.layout.heads == 8);
    CHECK(w.layout.kv_heads == 4);
    const train::Matrix ours = train::llama_logits(w.layout, w.values, tokens);
    lm::DecoderRunner runner(m);
    const std::vector<float> want = runner.feed(tokens);
    REQUIRE(static_cast<size_t>(ours.size()) == want.size());
    double err = 0, norm = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      err += std::pow(static_cast<double>(ours.data()[i]) - want[i], 2);
      norm += std::pow(static_cast<double>(want[i]), 2);
    }
    CHECK(std::sqrt(err / norm) < 1e-5);
  }
}

TEST_CASE("the distillation gradient matches finite differences in every kind of weight") {
  const Model m = load_model(test::test_data("stories260K"));
  const train::LlamaWeights w = train::llama_weights(m);
  const std::vector<int64_t> tokens = {1, 403, 407, 261, 378, 300, 330, 418, 275, 270};
  // A teacher the model does not already match: its own distribution at temperature 2.
  const train::Matrix teacher = train::log_softmax_rows(train::llama_logits(w.layout, w.values, tokens) / 2.0f);
  std::vector<train::Matrix> grads(w.values.size());
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = train::Matrix::Zero(w.values[i].rows(), w.values[i].cols());
  const double loss = train::llama_distill_step(w.layout, w.values, tokens, teacher, 1.0f, grads);
  CHECK(loss > 0.01);
  const auto& ly = w.layout.layers[2];
  for (size_t index : {w.layout.embed, w.layout.final_norm, ly.attn_norm, ly.q, ly.k, ly.v, ly.o, ly.ffn_norm, ly.gate, ly.up,
                       ly.down, w.layout.layers[0].q, w.layout.layers[4].down}) {
    INFO(w.names[index]);
    // The coordinate with the largest gradient: far above float32's rounding of the loss.
    Eigen::Index r = 0, c = 0;
    grads[index].cwiseAbs().maxCoeff(&r, &c);
    std::vector<train::Matrix> moved = w.values;
    const float h = 1e-2f * std::max(1.0f, std::fabs(w.values[index](r, c)));
    std::vector<train::Matrix> unused = grads;
    moved[index](r, c) = w.values[index](r, c) + h;
    const double up = train::llama_distill_step(w.layout, moved, tokens, teacher, 0.0f, unused);
    moved[index](r, c) = w.values[index](r, c) - h;
    const double down = train::llama_distill_step(w.layout, moved, tokens, teacher, 0.0f, unused);
    const double numeric = (up - down) / (2.0 * h);
    CHECK(grads[index](r, c) == Approx(numeric).epsilon(0.03));
  }
}

TEST_CASE("distilling for q4 lowers the quantized model's KL on text it did not see, the same with any thread count") {
  const Model m = load_model(test::test_data("stories260K"));
  const train::LlamaWeights original = train::llama_weights(m);
  passes::QuantizeConfig config = rtn_config("q4");
  const train::FakeQuantize fake = train::plan_fake_quantize(m, original, config, 50).fake_quantize;
  const auto train_text = sampled(m, 48, 96, 100), held_out = sampled(m, 6, 128, 900);
  train::DistillOptions options;
  options.steps = 50;
  options.learning_rate = 1e-4;
  options.batch = 4;
  options.window = 64;
  const double before = quantized_kl(original, original, fake, held_out);

  train::LlamaWeights a = original, b = original;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const train::DistillReport ra = train::distill(a, train_text, fake, options);
  omp_set_num_threads(std::max(2, threads));
  train::distill(b, train_text, fake, options);
  omp_set_num_threads(threads);
  for (size_t i = 0; i < a.values.size(); ++i) CHECK(a.values[i] == b.values[i]);

  const double after = quantized_kl(original, a, fake, held_out);
  INFO("KL " << before << " -> " << after << "; training KL " << ra.first_loss << " -> " << ra.last_loss);
  CHECK(after < 0.8 * before);
  CHECK(ra.last_loss < ra.first_loss);

  // The trained weights, written back, are what the quantize pass then quantizes.
  Model trained = m;
  train::write_llama_weights(trained, a);
  CHECK(train::llama_weights(trained).values[a.layout.layers[1].q] == a.values[a.layout.layers[1].q]);
  config.algorithm = "gptq";
  CHECK_THROWS_WITH(train::plan_fake_quantize(m, original, config, 1), Catch::Contains("rtn or mse"));

  // Pruned weights stay pruned.
  train::LlamaWeights pruned = original;
  train::Matrix& up = pruned.values[pruned.layout.layers[3].up];
  for (Eigen::Index e = 0; e < up.size(); e += 2) up.data()[e] = 0.0f;
  options.steps = 3;
  train::distill(pruned, train_text, fake, options);
  for (Eigen::Index e = 0; e < up.size(); ++e)
    if ((e % 2 == 0) != (up.data()[e] == 0.0f)) FAIL_CHECK("weight " << e);
}

TEST_CASE("trellis-coded weights train as floats, then freeze layer by layer") {
  const Model m = load_model(test::test_data("stories260K"));
  const train::LlamaWeights original = train::llama_weights(m);
  const passes::QuantizeConfig config = rtn_config("tcq4-ch");
  const train::FakeQuantPlan plan = train::plan_fake_quantize(m, original, config, 14);
  // Five layers and the embedding: six stages, each 14 / 7 steps after the one before.
  const auto& layers = original.layout.layers;
  REQUIRE(plan.freeze_at.size() == original.values.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    CHECK(plan.freeze_at[layers[l].q] == 2 * static_cast<int64_t>(l + 1));
    CHECK(plan.freeze_at[layers[l].down] == 2 * static_cast<int64_t>(l + 1));
  }
  CHECK(plan.freeze_at[original.layout.embed] == 12);
  CHECK(plan.freeze_at[layers[0].attn_norm] == -1);  // norms are not quantized: they train to the end

  train::DistillOptions options;
  options.steps = 14;
  options.batch = 2;
  options.window = 32;
  options.freeze_at = plan.freeze_at;
  train::LlamaWeights w = original;
  const size_t q0 = layers[0].q, q4 = layers[4].q;
  train::Matrix q0_after_freezing, q4_after_freezing;
  train::distill(w, sampled(m, 8, 48, 300), plan.fake_quantize, options, [&](int64_t step, int64_t, double) {
    if (step == 3) q0_after_freezing = w.values[q0];
    if (step == 11) q4_after_freezing = w.values[q4];
  });
  // Until layer 0 froze, every weight was the original float; after it, the
  // later layers trained as floats around its error.
  CHECK(q0_after_freezing == original.values[q0]);
  CHECK(q4_after_freezing != original.values[q4]);
  CHECK(w.values[q0] == q0_after_freezing);
  CHECK(w.values[q4] == q4_after_freezing);
  CHECK(w.values[layers[0].attn_norm] != original.values[layers[0].attn_norm]);
  options.freeze_at.pop_back();
  CHECK_THROWS_WITH(train::distill(w, sampled(m, 2, 48, 300), plan.fake_quantize, options), Catch::Contains("freezing step"));
}

TEST_CASE("quantize --finetune: trains on --calib text, reports it, and refuses what it cannot train") {
  test::TempDir tmp;
  test::write_bytes(tmp.file("calib.txt"),
                    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, "
                    "she saw a big red ball. She wanted to play with it, but it was too high. Her mom said, \"Let's ask "
                    "the man for help.\" The man smiled and gave Lily the ball. Lily was very happy.\n");
  const std::string model = test::test_data("stories260K");
  auto ok = test::run_slmopt("quantize " + model + " -o " + tmp.file("q.slm") + " --default q4 --algorithm rtn --calib " +
                             tmp.file("calib.txt") + " --calib-ctx 32 --finetune 3 --json");
  REQUIRE(ok.exit_code == 0);
  const auto doc = nlohmann::json::parse(ok.out);
  CHECK(doc.at("finetune").at("steps") == 3);
  CHECK(doc.at("finetune").at("first_kl").get<double>() > 0);
  CHECK(std::filesystem::exists(tmp.file("q.slm")));

  // examples/stories260K-4bit.yaml (docs/llm.md's best 4-bit recipe) trains and stays under 4.5 bits per weight.
  auto recipe = test::run_slmopt("quantize " + model + " -o " + tmp.file("r.slm") + " --config " + SLMOPT_SOURCE_DIR +
                                 "/examples/stories260K-4bit.yaml --calib " + tmp.file("calib.txt") +
                                 " --calib-ctx 32 --finetune 2 --json");
  REQUIRE(recipe.exit_code == 0);
  const MatrixBits bits = matrix_bits(nlohmann::json::parse(recipe.out));
  CHECK(bits.weights > 250000);  // every matrix, the embedding included
  CHECK(bits.per_weight <= 4.5);
  CHECK(bits.schemes == std::set<std::string>{"ec5-ch", "ec4-ch"});

  auto no_text = test::run_slmopt("quantize " + model + " -o " + tmp.file("n.slm") + " --finetune 3");
  CHECK(no_text.exit_code == 2);
  CHECK(no_text.err.find("needs --calib FILE.txt") != std::string::npos);
  auto gptq = test::run_slmopt("quantize " + model + " -o " + tmp.file("g.slm") + " --algorithm gptq --calib " +
                               tmp.file("calib.txt") + " --finetune 3");
  CHECK(gptq.exit_code == 2);
  CHECK(gptq.err.find("rtn or mse") != std::string::npos);
  auto not_llama = test::run_slmopt("quantize " + test::test_data("exported_attention.onnx") + " -o " + tmp.file("e.slm") +
                                    " --calib " + tmp.file("calib.txt") + " --finetune 3");
  CHECK(not_llama.exit_code == 2);
  CHECK(not_llama.err.find("decoder") != std::string::npos);
  for (const char* f : {"n.slm", "g.slm", "e.slm"}) CHECK_FALSE(std::filesystem::exists(tmp.file(f)));
}

TEST_CASE("stories260K at 4.4 bits per weight reaches the KL of llama.cpp's 8 bits (examples/stories260K-4bit.yaml)") {
  // docs/llm.md's recipe end to end, the target: 2,000 steps of
  // distillation on 261 K tokens the model sampled, then the next-token KL
  // from the f32 model on 4,080 other sampled tokens, <= 0.0145, with every
  // matrix (the embedding included) at <= 4.5 bits per weight. Measured 0.0142.
  test::TempDir tmp;
  const std::string model = test::test_data("stories260K");
  auto quantized = test::run_slmopt("quantize " + model + " -o " + tmp.file("q.slm") + " --config " + SLMOPT_SOURCE_DIR +
                                    "/examples/stories260K-4bit.yaml --calib " +
                                    test::test_data("stories260K/sampled-calib.txt") + " --finetune 2000 --json --quiet");
  REQUIRE(quantized.exit_code == 0);
  const MatrixBits bits = matrix_bits(nlohmann::json::parse(quantized.out));
  CHECK(bits.weights > 250000);
  CHECK(bits.per_weight <= 4.5);
  auto evaluated = test::run_slmopt("eval --reference " + model + " --candidate " + tmp.file("q.slm") + " --text " +
                                    test::test_data("stories260K/sampled-eval.txt") +
                                    " --ctx 512 --json --gate 'kl<=0.0145'");
  const auto report = nlohmann::json::parse(evaluated.out);
  const auto& lm = report.at("language_model");
  INFO("KL " << lm.at("kl_mean") << " at " << bits.per_weight << " bits per weight");
  CHECK(lm.at("scored_tokens") == 2040);
  CHECK(lm.at("kl_mean").get<double>() <= 0.0145);
  CHECK(evaluated.exit_code == 0);  // the gate passed
}
