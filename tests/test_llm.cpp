// Decoder language models: the stories260K Llama from its Hugging Face and its
// llama2.c files against its independent reference forward pass, the key/value
// cache, greedy generation, and the errors of bad checkpoints.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "calib/npy.hpp"
#include "calib/collector.hpp"
#include "calib/npz.hpp"
#include "core/error.hpp"
#include "hf_config/hf_config.hpp"
#include "llama2c/llama2c_io.hpp"
#include "llm/decoder_graph.hpp"
#include "lm/decoder_runner.hpp"
#include "lm/sampler.hpp"
#include "model_io.hpp"
#include "passes/prune.hpp"
#include "runtime/session.hpp"
#include "safetensors/safetensors_io.hpp"
#include "test_util.hpp"

using namespace slmopt;

namespace {

struct Reference {
  std::vector<int64_t> tokens;
  std::vector<float> logits;  // [64, 512]
};

const Reference& stories_reference() {
  static const Reference ref = [] {
    auto npz = calib::read_npz(test::test_data("stories260K/stories260K_reference.npz"));
    Reference r;
    const Tensor& t = npz.at("tokens");
    for (int64_t i = 0; i < t.numel(); ++i) r.tokens.push_back(t.data<int32_t>()[i]);
    const Tensor& l = npz.at("logits");
    r.logits.assign(l.data<float>(), l.data<float>() + l.numel());
    return r;
  }();
  return ref;
}

// Relative L2 error of a against b, and the largest |a - b| over the largest |b|.
std::pair<double, double> relative_errors(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0, norm = 0, max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a[i]) - b[i];
    diff += d * d;
    norm += double(b[i]) * b[i];
    max_diff = std::max(max_diff, std::abs(d));
    max_ref = std::max(max_ref, std::abs(double(b[i])));
  }
  return {std::sqrt(diff / norm), max_diff / max_ref};
}

std::vector<float> prompt_logits(const Model& m, const std::vector<int64_t>& tokens) {
  lm::DecoderRunner runner(m);
  return runner.feed(tokens);
}

}  // namespace

TEST_CASE("stories260K from safetensors and from llama2.c matches its reference logits") {
  const auto& ref = stories_reference();
  REQUIRE(ref.tokens.size() == 64);
  for (const std::string file : {"stories260K", "stories260K/stories260K.bin"}) {
    INFO(file);
    const Model m = load_model(test::test_data(file));
    const auto [rel_l2, rel_max] = relative_errors(prompt_logits(m, ref.tokens), ref.logits);
    CHECK(rel_l2 < 1e-4);
    CHECK(rel_max < 1e-4);
  }
}

TEST_CASE("the key/value cache gives the logits of the whole prompt, token by token") {
  const auto& ref = stories_reference();
  const Model m = load_model(test::test_data("stories260K"));
  lm::DecoderRunner runner(m);
  std::vector<float> logits;
  // A prompt of 5, then single tokens, then a chunk of 10: every split must agree.
  auto feed = [&](size_t from, size_t to) {
    auto l = runner.feed(std::span(ref.tokens).subspan(from, to - from));
    logits.insert(logits.end(), l.begin(), l.end());
  };
  feed(0, 5);
  for (size_t i = 5; i < 30; ++i) feed(i, i + 1);
  feed(30, 40);
  feed(40, 64);
  CHECK(runner.position() == 64);
  CHECK(runner.cache_bytes() == 5u * 2 * 4 * 64 * 8 * 4);
  const auto [rel_l2, rel_max] = relative_errors(logits, ref.logits);
  CHECK(rel_l2 < 1e-4);
  CHECK(rel_max < 1e-4);
}

TEST_CASE("greedy generation from BOS reproduces the reference tokens exactly") {
  const auto& ref = stories_reference();
  const Model m = load_model(test::test_data("stories260K/stories260K.bin"));
  lm::DecoderRunner runner(m);
  lm::Sampler greedy({});
  std::vector<int64_t> tokens{1};
  auto logits = runner.feed(tokens);
  while (tokens.size() < ref.tokens.size()) {
    tokens.push_back(greedy.next(logits));
    logits = runner.feed(std::span(tokens).last(1));
  }
  CHECK(tokens == ref.tokens);
}

TEST_CASE("sampling is seeded, stays inside top-k and top-p, and greedy at temperature 0") {
  const std::vector<float> logits{1.0f, 3.0f, 2.0f, 0.5f, 2.9f};
  CHECK(lm::Sampler({}).next(logits) == 1);
  auto draws = [&](lm::SamplingOptions o) {
    lm::Sampler s(o);
    std::vector<int64_t> out;
    for (int i = 0; i < 200; ++i) out.push_back(s.next(logits));
    return out;
  };
  const auto a = draws({1.0f, 0, 1.0f, 7}), b = draws({1.0f, 0, 1.0f, 7}), c = draws({1.0f, 0, 1.0f, 8});
  CHECK(a == b);
  CHECK(a != c);
  for (int64_t t : draws({1.0f, 2, 1.0f, 3})) CHECK((t == 1 || t == 4));
  // p(1) ~ 0.40, p(4) ~ 0.36: top-p 0.5 keeps both, 0.3 only token 1.
  for (int64_t t : draws({1.0f, 0, 0.5f, 3})) CHECK((t == 1 || t == 4));
  for (int64_t t : draws({1.0f, 0, 0.3f, 3})) CHECK(t == 1);
  std::set<int64_t> seen;
  for (int64_t t : draws({1.0f, 0, 1.0f, 5})) seen.insert(t);
  CHECK(seen.size() == 5);
  CHECK_THROWS(lm::Sampler({1.0f, 0, 0.0f, 1}));
}

TEST_CASE("a llama2.c checkpoint written from safetensors reads back to the same logits") {
  test::TempDir tmp;
  const Model m = load_model(test::test_data("stories260K"));
  save_model(m, tmp.file("model.bin"));
  auto cp = llama2c::read_checkpoint(tmp.file("model.bin"));
  CHECK(cp.version == 1);
  const Model back = load_model(tmp.file("model.bin"));
  const std::vector<int64_t> prompt{1, 403, 407, 261};
  CHECK(prompt_logits(back, prompt) == prompt_logits(m, prompt));
  // Every tensor but the permuted wq/wk is the original bytes; those come back exactly too.
  for (const auto& t : cp.tensors) {
    const NamedTensor* orig = m.graph.find_initializer(t.name);
    REQUIRE(orig);
    CHECK(orig->tensor.bit_equal(t.tensor));
  }
}

TEST_CASE("bad decoder checkpoints are refused with the tensor or field named") {
  test::TempDir tmp;
  auto contents = safetensors::read(test::test_data("stories260K/model.safetensors"));
  const ArchConfig config = read_hf_config(test::test_data("stories260K/config.json"));
  auto message = [&](std::vector<NamedTensor> tensors, ArchConfig c) -> std::string {
    try {
      llm::build_decoder(c, std::move(tensors), "model.safetensors");
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  auto without = [&](const std::string& name) {
    auto t = contents.tensors;
    std::erase_if(t, [&](const NamedTensor& x) { return x.name == name; });
    return t;
  };
  CHECK(message(without("model.layers.3.mlp.up_proj.weight"), config) ==
        "model.safetensors: missing tensor 'model.layers.3.mlp.up_proj.weight'");
  auto wrong = contents.tensors;
  for (auto& t : wrong)
    if (t.name == "model.layers.1.self_attn.k_proj.weight") t.tensor = test::gaussian_tensor({64, 64}, 1);
  CHECK(message(wrong, config) ==
        "model.safetensors: tensor 'model.layers.1.self_attn.k_proj.weight' has shape [64, 64], the config implies [32, 64]");
  auto extra = contents.tensors;
  extra.push_back(NamedTensor{"model.layers.0.self_attn.q_norm.weight", test::gaussian_tensor({8}, 2), {}});
  CHECK(message(extra, config) ==
        "model.safetensors: 1 tensor(s) the architecture does not use: 'model.layers.0.self_attn.q_norm.weight'");
  ArchConfig gelu = config;
  gelu.hidden_act = "gelu";
  CHECK(message(contents.tensors, gelu) ==
        "model.safetensors: hidden_act 'gelu' is not supported for LlamaForCausalLM (supported: silu)");
  ArchConfig yarn = config;
  yarn.rope_scaling = RopeScaling{"yarn", 4.0, 1.0, 4.0, 512};
  CHECK(message(contents.tensors, yarn) ==
        "model.safetensors: rope_scaling type 'yarn' is not supported (supported: default, linear, llama3)");

  // llama2.c files: truncated, a header that lies, a hostile size.
  const std::string good = test::read_bytes(test::test_data("stories260K/stories260K.bin"));
  auto llama2c_error = [&](const std::string& bytes) -> std::string {
    test::write_bytes(tmp.file("bad.bin"), bytes);
    try {
      load_model(tmp.file("bad.bin"));
    } catch (const Error& e) {
      return std::string(e.what()).substr(tmp.file("bad.bin").size() + 2);
    }
    return "no error";
  };
  CHECK(llama2c_error(good.substr(0, 20)) == "llama2.c header is truncated");
  CHECK(llama2c_error(good.substr(0, good.size() - 4)) ==
        "llama2.c checkpoint is 1056536 bytes, its header implies 1056540");
  std::string lying = good;
  lying[8] = 6;  // n_layers 5 -> 6
  CHECK(llama2c_error(lying) == "llama2.c checkpoint is 1056540 bytes, its header implies 1238300");
  std::string huge = good;
  huge[3] = 0x7f;  // dim 64 -> 2^30 + 64
  CHECK(llama2c_error(huge) == "llama2.c header field dim is 2130706496 (expected 1 to 16777216)");
  std::string odd = good;
  odd[12] = 3;  // 3 heads do not divide 64
  CHECK(llama2c_error(odd).starts_with("llama2.c header: dim 64, 3 heads and 4 key/value heads"));
}

TEST_CASE("language-model CLI: generate, text calibration, and eval --text with perplexity and KL gates") {
  test::TempDir tmp;
  const auto& ref = stories_reference();
  const std::string model = test::test_data("stories260K"), llama2c = test::test_data("stories260K/stories260K.bin");
  const std::string tok = " --tokenizer '" + test::test_data("stories260K/tok512.bin") + "'";

  auto g = test::run_slmopt("generate '" + llama2c + "' -n 63 --json");
  REQUIRE(g.exit_code == 0);
  const auto doc = nlohmann::json::parse(g.out);
  CHECK(doc["tokens"].get<std::vector<int64_t>>() == std::vector<int64_t>(ref.tokens.begin() + 1, ref.tokens.end()));
  CHECK_THAT(doc["text"].get<std::string>(), Catch::StartsWith("Once upon a time, there was a little girl named Lily."));
  CHECK(doc["kv_cache_bytes"] == 5 * 2 * 4 * 63 * 8 * 4);  // the last token is never fed back
  // Ids that start with BOS get no second one; others get BOS in front.
  for (const std::string ids : {"1,403", "403"}) {
    auto p = test::run_slmopt("generate '" + llama2c + "' --ids " + ids + " -n 2 --json");
    REQUIRE(p.exit_code == 0);
    CHECK(nlohmann::json::parse(p.out)["prompt_tokens"] == std::vector<int64_t>{1, 403});
  }

  // Text the model wrote itself (the reference distribution): held-out and calibration halves.
  auto sample_text = [&](const std::string& file, int first_seed) {
    std::string text;
    for (int seed = first_seed; seed < first_seed + 3; ++seed) {
      auto s = test::run_slmopt("generate '" + llama2c + "' --temperature 1 --seed " + std::to_string(seed) +
                                " -n 300 --ignore-eos -q");
      REQUIRE(s.exit_code == 0);
      text += s.out;
    }
    test::write_bytes(tmp.file(file), text);
  };
  sample_text("held.txt", 1);
  sample_text("calib.txt", 11);
  CHECK(test::read_bytes(tmp.file("held.txt")) != test::read_bytes(tmp.file("calib.txt")));

  for (const std::string algorithm : {"rtn", "gptq"}) {
    const std::string calib = algorithm == "gptq" ? " --calib '" + tmp.file("calib.txt") + "'" + tok : "";
    auto q = test::run_slmopt("quantize '" + model + "' -o '" + tmp.file(algorithm + ".slm") + "' --bits '*=q4' --algorithm " +
                              algorithm + calib + " -q");
    REQUIRE(q.exit_code == 0);
  }
  auto eval = [&](const std::string& candidate, const std::string& gate) {
    auto e = test::run_slmopt("eval --reference '" + model + "' --candidate '" + tmp.file(candidate) + "' --text '" +
                              tmp.file("held.txt") + "'" + tok + " --ctx 128 --gate '" + gate + "' --json");
    INFO(e.err);
    REQUIRE((e.exit_code == 0 || e.exit_code == 1));
    auto j = nlohmann::json::parse(e.out);
    j["exit"] = e.exit_code;
    return j;
  };
  const auto rtn = eval("rtn.slm", "kl<=0.5"), gptq = eval("gptq.slm", "kl<=1e-4");
  const auto& r = rtn["language_model"];
  const auto& c = gptq["language_model"];
  CHECK(r["windows"].get<int>() >= 6);  // ~900 tokens in windows of 128
  CHECK(r["scored_tokens"] == r["windows"].get<int>() * 63);  // the second half of each window
  CHECK(r["reference_ppl"] == c["reference_ppl"]);
  CHECK(r["reference_ppl"].get<double>() > 1.5);  // the model's own samples are likely to it, not certain
  CHECK(r["reference_ppl"].get<double>() < 10);
  // Calibrating on text lowers the KL divergence of 4 bits (perplexity over
  // ~450 tokens is too noisy to rank them).
  CHECK(c["kl_mean"].get<double>() < r["kl_mean"].get<double>());
  CHECK(r["kl_mean"].get<double>() > 0);
  CHECK(rtn["exit"] == 0);
  CHECK(gptq["exit"] == 1);  // the gate it cannot meet fails the command
  CHECK(gptq["gates"][0]["passed"] == false);
}

namespace {

// The seeded checkpoint tests/fixtures/decoder_reference.py writes into tmp
// (with tokens.npy and the NumPy forward pass's logits.npy), loaded.
Model seeded_checkpoint(const std::string& arch, const test::TempDir& tmp) {
  const std::string script = std::string(SLMOPT_SOURCE_DIR) + "/tests/fixtures/decoder_reference.py";
  REQUIRE(std::system(("/usr/bin/python3 '" + script + "' " + arch + " '" + tmp.path().string() + "'").c_str()) == 0);
  return load_model(tmp.path().string());
}

}  // namespace

TEST_CASE("Qwen2, Llama 3 RoPE scaling, Mistral's sliding window and GPT-2 match an independent NumPy forward pass") {
  for (const std::string arch : {"qwen2", "llama3", "mistral", "gpt2"}) {
    INFO(arch);
    test::TempDir tmp;
    const Model m = seeded_checkpoint(arch, tmp);
    const Tensor tokens = calib::read_npy(tmp.file("tokens.npy"));
    const Tensor expected = calib::read_npy(tmp.file("logits.npy"));
    const std::vector<int64_t> ids(tokens.data<int64_t>(), tokens.data<int64_t>() + tokens.numel());
    const std::vector<float> want(expected.data<float>(), expected.data<float>() + expected.numel());
    const auto [rel_l2, rel_max] = relative_errors(prompt_logits(m, ids), want);
    CHECK(rel_l2 < 1e-5);
    CHECK(rel_max < 1e-5);
    // The cache gives the same logits token by token (the sliding window crosses the cache).
    lm::DecoderRunner runner(m);
    std::vector<float> stepped;
    for (int64_t id : ids) {
      auto l = runner.feed(std::span(&id, 1));
      stepped.insert(stepped.end(), l.begin(), l.end());
    }
    CHECK(relative_errors(stepped, want).first < 1e-5);
  }
}

TEST_CASE("GPTQ calibrated on token ids quantizes an untied embedding by scale search") {
  // Llama 3's seeded checkpoint has its own lm_head: the embedding is only a
  // Gather table, which multiplies no input GPTQ could weigh errors by.
  test::TempDir tmp;
  seeded_checkpoint("llama3", tmp);
  auto q = test::run_slmopt("quantize '" + tmp.path().string() + "' -o '" + tmp.file("q.slm") + "' --bits '*=q4' --min-elements 0" +
                            " --algorithm gptq --calib '" + tmp.file("tokens.npy") + "' --calib-ctx 20 --json -q");
  INFO(q.err);
  REQUIRE(q.exit_code == 0);
  const auto doc = nlohmann::json::parse(q.out);
  int gptq = 0;
  for (const auto& t : doc["tensors"]) {
    if (t["action"].get<std::string>().starts_with("keep")) continue;
    if (t["op"] == "Gather") {
      CHECK(t["name"] == "model.embed_tokens.weight");
      CHECK(t["algorithm"] == "gptq: not applicable to this layer; scale search only");
    } else {
      CHECK(t["algorithm"] == "gptq");
      CHECK(t["output_error"].is_number());  // the ids reached every product
      ++gptq;
    }
  }
  CHECK(gptq == 2 * 7 + 1);  // q, k, v, o, gate, up, down per layer and lm_head
}

TEST_CASE("eval --text takes pre-tokenized ids as .npy") {
  test::TempDir tmp;
  const auto& ref = stories_reference();
  calib::write_npy(tmp.file("ids.npy"), Tensor::from_values(DType::I64, {1, 64}, ref.tokens));
  const std::string model = test::test_data("stories260K");
  auto e = test::run_slmopt("eval --reference '" + model + "' --candidate '" + test::test_data("stories260K/stories260K.bin") +
                            "' --text '" + tmp.file("ids.npy") + "' --ctx 32 --gate 'kl<=1e-9' --json");
  REQUIRE(e.exit_code == 0);  // the same weights from two files: no divergence
  const auto doc = nlohmann::json::parse(e.out);
  CHECK(doc["language_model"]["windows"] == 2);
  CHECK(doc["language_model"]["scored_tokens"] == 2 * 15);
  CHECK(std::abs(doc["language_model"]["ppl_delta"].get<double>()) < 1e-6);
  calib::write_npy(tmp.file("floats.npy"), test::gaussian_tensor({10}, 1));
  auto bad = test::run_slmopt("eval --reference '" + model + "' --candidate '" + model + "' --text '" + tmp.file("floats.npy") + "'");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("token ids must be int32 or int64, got f32"));
}

namespace {

int64_t parameters_of(const Model& m) {
  int64_t n = 0;
  for (const auto& init : m.graph.initializers)
    if (init.tensor.dtype() == DType::F32) n += init.tensor.numel();
  return n;
}

// Which of a layer's key/value heads survive in `pruned`: by their k_proj rows.
std::vector<int64_t> kept_kv_heads(const Model& original, const Model& pruned, int64_t layer, int64_t kv, int64_t hd) {
  const std::string name = "model.layers." + std::to_string(layer) + ".self_attn.k_proj.weight";
  const Tensor& a = original.graph.find_initializer(name)->tensor;
  const Tensor& b = pruned.graph.find_initializer(name)->tensor;
  const int64_t d = a.shape()[1];
  std::vector<int64_t> kept;
  for (int64_t j = 0; j < kv; ++j)
    for (int64_t r = 0; r < b.shape()[0]; r += hd)
      if (std::equal(a.data<float>() + j * hd * d, a.data<float>() + (j + 1) * hd * d, b.data<float>() + r * d))
        kept.push_back(j);
  return kept;
}

// One calibration sample: the prompt with an empty cache.
calib::Sample prompt_sample(const Model& m, const std::vector<int64_t>& tokens) {
  calib::Sample sample;
  lm::DecoderRunner probe(m);
  sample["input_ids"] = Tensor::from_values(DType::I64, {1, static_cast<int64_t>(tokens.size())}, tokens);
  for (int64_t i = 0; i < probe.layers(); ++i)
    for (const auto& name : {llm::past_key_name(i), llm::past_value_name(i)})
      sample[name] = Tensor(DType::F32, {1, probe.kv_heads(static_cast<size_t>(i)), 0, probe.head_dim()});
  return sample;
}

}  // namespace

TEST_CASE("attention heads: pruned with the query heads sharing them, the decoder equals the original without them") {
  const Model m = load_model(test::test_data("stories260K"));  // 8 query heads share 4 key/value heads, head_dim 8
  const std::vector<int64_t> tokens = {1, 403, 407, 261, 378, 300, 330, 418, 275, 270, 267, 352};
  const std::vector<float> base = prompt_logits(m, tokens);
  passes::PruneConfig config;
  config.structured = "heads";
  config.sparsity = "0";
  passes::PruneReport report;
  CHECK(prompt_logits(passes::prune_model(m, config, report), tokens) == base);  // 0 %: the same model

  for (const char* method : {"magnitude", "wanda"}) {
    INFO(method);
    config.sparsity = "0.25";  // one key/value head (and its two query heads) of four per layer
    config.method = method;
    config.compensate_means = false;  // compared with the original below, which has no o_proj bias
    calib::CalibStats stats;
    if (std::string(method) == "wanda") {
      stats = calib::collect_stats(m, {prompt_sample(m, tokens)}, {});
      config.stats = &stats;
    }
    report = {};
    const Model p = passes::prune_model(m, config, report);
    REQUIRE(report.groups.size() == 5);
    Model reference = m;
    for (int64_t layer = 0; layer < 5; ++layer) {
      CHECK(report.groups[static_cast<size_t>(layer)].kept == 3);
      const auto kept = kept_kv_heads(m, p, layer, 4, 8);
      REQUIRE(kept.size() == 3);
      // The reference reads nothing from the removed heads: their o_proj columns are 0.
      Tensor& wo = const_cast<NamedTensor*>(reference.graph.find_initializer("model.layers." + std::to_string(layer) + ".self_attn.o_proj.weight"))->tensor;
      for (int64_t j = 0; j < 4; ++j)
        if (std::find(kept.begin(), kept.end(), j) == kept.end())
          for (int64_t r = 0; r < 64; ++r)
            for (int64_t c = j * 16; c < (j + 1) * 16; ++c) wo.mutable_data<float>()[r * 64 + c] = 0.0f;
    }
    const auto [rel, max_rel] = relative_errors(prompt_logits(p, tokens), prompt_logits(reference, tokens));
    CHECK(rel < 1e-5);
    (void)max_rel;
    CHECK(parameters_of(p) == parameters_of(m) - 5 * (16 * 64 + 8 * 64 * 2 + 64 * 16));  // q rows, k and v rows, o columns
    if (config.stats) {
      // Mean compensation: o_proj gains a bias carrying the removed heads' mean output.
      config.compensate_means = true;
      report = {};
      const Model c = passes::prune_model(m, config, report);
      CHECK(report.groups[0].compensated == 1);
      const NamedTensor* bias = c.graph.find_initializer("model.layers.0.self_attn.o_proj.bias");
      REQUIRE(bias);
      CHECK(bias->tensor.shape() == std::vector<int64_t>{64});
      CHECK(parameters_of(c) == parameters_of(p) + 5 * 64);
    }
  }

  // Layers may keep different numbers of heads; the cache follows each layer.
  config.method = "magnitude";
  config.stats = nullptr;
  config.sparsity = "0";
  config.rules = parse_rule_shorthand("*layers.1.*=0.5,*layers.3.*=0.75", "sparsity", "sparsity");
  report = {};
  const Model mixed = passes::prune_model(m, config, report);
  CHECK(report.groups[1].kept == 2);
  CHECK(report.groups[3].kept == 1);
  lm::DecoderRunner runner(mixed);
  CHECK(runner.kv_heads(1) == 2);
  CHECK(runner.kv_heads(3) == 1);
  CHECK(runner.feed(tokens).size() == tokens.size() * 512);
  CHECK(runner.feed(std::vector<int64_t>{5}).size() == 512);

  // Anything else is refused, saying why.
  config.rules = {};
  config.sparsity = "0.5";
  const Model mlp = test::single_node_model("MatMul", test::gaussian_tensor({8, 8}, 1), {1, 8});
  CHECK_THROWS_WITH(passes::prune_model(mlp, config, report), Catch::Contains("found no attention layer"));
  config.sparsity = "2:4";
  CHECK_THROWS_WITH(passes::prune_model(m, config, report), Catch::Contains("not N:M"));
}

TEST_CASE("attention heads of GPT-2: c_attn's thirds and c_proj's rows go together, the decoder equals the original without them") {
  test::TempDir tmp;
  const Model m = seeded_checkpoint("gpt2", tmp);  // 2 layers of 6 heads of 8, width 48, fused c_attn
  const std::vector<int64_t> tokens = {1, 40, 7, 93, 12, 55, 61, 8, 30, 2, 77, 19};
  const std::vector<float> base = prompt_logits(m, tokens);
  passes::PruneConfig config;
  config.structured = "heads";
  config.sparsity = "0";
  passes::PruneReport report;
  CHECK(prompt_logits(passes::prune_model(m, config, report), tokens) == base);

  config.sparsity = "0.5";  // three heads of six
  config.compensate_means = false;
  report = {};
  const Model p = passes::prune_model(m, config, report);
  REQUIRE(report.groups.size() == 2);
  Model reference = m;
  for (int64_t layer = 0; layer < 2; ++layer) {
    CHECK(report.groups[static_cast<size_t>(layer)].kept == 3);
    const std::string prefix = "transformer.h." + std::to_string(layer) + ".attn.";
    const Tensor& before = m.graph.find_initializer(prefix + "c_attn.weight")->tensor;
    const Tensor& after = p.graph.find_initializer(prefix + "c_attn.weight")->tensor;
    REQUIRE(after.shape() == std::vector<int64_t>{48, 72});
    CHECK(p.graph.find_initializer(prefix + "c_attn.bias")->tensor.shape() == std::vector<int64_t>{72});
    CHECK(p.graph.find_initializer(prefix + "c_proj.weight")->tensor.shape() == std::vector<int64_t>{24, 48});
    // A kept head's key columns (the second third) come over whole; its query
    // and value columns sit at the same place in their thirds.
    std::vector<int64_t> kept;
    for (int64_t j = 0; j < 6; ++j)
      for (int64_t slot = 0; slot < 3; ++slot) {
        bool same = true;
        for (int64_t part = 0; part < 3; ++part)
          for (int64_t r = 0; r < 48; ++r)
            for (int64_t c = 0; c < 8; ++c)
              same = same && before.data<float>()[r * 144 + part * 48 + j * 8 + c] == after.data<float>()[r * 72 + part * 24 + slot * 8 + c];
        if (same) kept.push_back(j);
      }
    REQUIRE(kept.size() == 3);
    Tensor& wo = const_cast<NamedTensor*>(reference.graph.find_initializer(prefix + "c_proj.weight"))->tensor;
    for (int64_t j = 0; j < 6; ++j)
      if (std::find(kept.begin(), kept.end(), j) == kept.end())
        for (int64_t r = j * 8; r < (j + 1) * 8; ++r)
          for (int64_t c = 0; c < 48; ++c) wo.mutable_data<float>()[r * 48 + c] = 0.0f;
  }
  CHECK(relative_errors(prompt_logits(p, tokens), prompt_logits(reference, tokens)).first < 1e-5);
  CHECK(parameters_of(p) == parameters_of(m) - 2 * 3 * (3 * 8 * 48 + 3 * 8 + 8 * 48));  // q/k/v columns and biases, c_proj rows
  lm::DecoderRunner runner(p);
  CHECK(runner.kv_heads(0) == 3);
  CHECK(runner.feed(tokens).size() == tokens.size() * 97);

  // Activation-aware, with the removed heads' mean moved into c_proj's bias.
  const calib::CalibStats stats = calib::collect_stats(m, {prompt_sample(m, tokens)}, {});
  config.method = "wanda";
  config.stats = &stats;
  config.compensate_means = true;
  report = {};
  const Model w = passes::prune_model(m, config, report);
  CHECK(report.groups[0].compensated == 1);
  CHECK(parameters_of(w) == parameters_of(p));  // c_proj had a bias already
  const Tensor& bias_before = m.graph.find_initializer("transformer.h.0.attn.c_proj.bias")->tensor;
  const Tensor& bias_after = w.graph.find_initializer("transformer.h.0.attn.c_proj.bias")->tensor;
  CHECK_FALSE(std::equal(bias_before.data<float>(), bias_before.data<float>() + 48, bias_after.data<float>()));
  for (float x : prompt_logits(w, tokens)) REQUIRE(std::isfinite(x));
}
