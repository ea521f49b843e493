// slmopt generate MODEL --prompt TEXT: greedy or sampled text from a decoder
// language model, with a key/value cache; prints tokens as they come and then
// the prefill and decode speeds and the memory used.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli_common.hpp"
#include "core/error.hpp"
#include "llm/decoder_graph.hpp"
#include "lm/decoder_runner.hpp"
#include "lm/sampler.hpp"
#include "model_io.hpp"
#include "lm_text.hpp"

namespace slmopt::cli {
namespace {

struct GenerateOptions {
  std::string model;
  std::string prompt;
  std::vector<int64_t> ids;
  std::string tokenizer;
  int64_t count = 64;
  lm::SamplingOptions sampling;
  bool no_bos = false;
  bool ignore_eos = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

uint64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<uint64_t>(u.ru_maxrss) * 1024;
}

void run_generate(const GenerateOptions& o, const GlobalOptions& global) {
  if (!o.prompt.empty() && !o.ids.empty()) throw_usage("give --prompt or --ids, not both");
  if (o.count < 0) throw_usage("-n must be 0 or more");
  const Model model = load_model(o.model);
  const auto info = llm::read_decoder_info(model);
  lm::DecoderRunner runner(model);
  if (info) runner.set_context_limit(info->context);

  std::unique_ptr<text::Tokenizer> tok;
  if (!o.prompt.empty())
    tok = require_tokenizer(o.model, o.tokenizer, runner.vocab());
  else if (auto path = find_tokenizer(o.model, o.tokenizer))
    tok = load_tokenizer(*path, runner.vocab());

  int64_t bos = info ? info->bos_token_id : -1;
  if (bos < 0 && tok) bos = tok->bos();
  std::vector<int64_t> eos = info ? info->eos_token_ids : std::vector<int64_t>{};
  if (eos.empty() && tok && tok->eos() >= 0) eos.push_back(tok->eos());

  std::vector<int64_t> prompt;
  // Ids that already start with BOS do not get a second one.
  if (!o.no_bos && bos >= 0 && (o.ids.empty() || o.ids.front() != bos)) prompt.push_back(bos);
  if (!o.ids.empty()) prompt.insert(prompt.end(), o.ids.begin(), o.ids.end());
  if (!o.prompt.empty()) {
    const auto ids = tok->encode(o.prompt);
    prompt.insert(prompt.end(), ids.begin(), ids.end());
  }
  if (prompt.empty()) throw_usage("nothing to start from: the model has no BOS token; give --prompt or --ids");

  const bool stream = !global.json;
  std::string text;
  auto emit = [&](int64_t id, int64_t previous) {
    if (!tok) {
      if (stream) std::cout << (previous < 0 ? "" : " ") << id << std::flush;
      return;
    }
    const std::string piece = tok->decode(id, previous);
    text += piece;
    if (stream) std::cout << piece << std::flush;
  };
  for (size_t i = 0; i < prompt.size(); ++i) emit(prompt[i], i ? prompt[i - 1] : -1);

  lm::Sampler sampler(o.sampling);
  auto start = std::chrono::steady_clock::now();
  std::vector<float> logits = runner.feed(prompt);
  const double prefill_s = seconds_since(start);
  uint64_t peak_activations = runner.last_stats().peak_activation_bytes;
  const auto vocab = static_cast<size_t>(runner.vocab());
  std::vector<int64_t> generated;
  start = std::chrono::steady_clock::now();
  int64_t previous = prompt.back();
  for (int64_t i = 0; i < o.count; ++i) {
    const std::span<const float> last(logits.data() + logits.size() - vocab, vocab);
    const int64_t next = sampler.next(last);
    generated.push_back(next);
    emit(next, previous);
    previous = next;
    if (!o.ignore_eos && std::find(eos.begin(), eos.end(), next) != eos.end()) break;
    if (i + 1 == o.count || (info && runner.position() >= info->context)) break;
    logits = runner.feed(std::span(&generated.back(), 1));
    peak_activations = std::max(peak_activations, runner.last_stats().peak_activation_bytes);
  }
  const double decode_s = seconds_since(start);
  // Tokens after the first were each one decode step.
  const double decode_steps = generated.size() > 1 ? static_cast<double>(generated.size() - 1) : 0;
  const double prefill_rate = prefill_s > 0 ? static_cast<double>(prompt.size()) / prefill_s : 0;
  const double decode_rate = decode_s > 0 && decode_steps > 0 ? decode_steps / decode_s : 0;
  if (global.json) {
    nlohmann::ordered_json doc{{"model", o.model},
                               {"prompt_tokens", prompt},
                               {"tokens", generated},
                               {"prefill_tokens_per_s", prefill_rate},
                               {"decode_tokens_per_s", decode_rate},
                               {"kv_cache_bytes", runner.cache_bytes()},
                               {"peak_activation_bytes", peak_activations},
                               {"peak_rss_bytes", peak_rss_bytes()}};
    if (tok) doc["text"] = text;  // the prompt and what followed
    print_json(doc);
    return;
  }
  std::cout << std::endl;
  if (!global.quiet)
    std::fprintf(stderr,
                 "prefill    %zu tokens, %.1f tokens/s\ndecode     %zu tokens, %.1f tokens/s\n"
                 "memory     key/value cache %s, peak activations %s, peak RSS %s\n",
                 prompt.size(), prefill_rate, generated.size(), decode_rate, human_bytes(runner.cache_bytes()).c_str(),
                 human_bytes(peak_activations).c_str(), human_bytes(peak_rss_bytes()).c_str());
}

}  // namespace

void setup_generate(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "Generate text with a decoder language model (key/value cache; greedy or sampled)");
  cmd->add_option("model", o->model, "Decoder model: Hugging Face folder, llama2.c .bin, .slm, .onnx or blob")->required();
  cmd->add_option("--prompt,-p", o->prompt, "Text to continue (needs a tokenizer)");
  cmd->add_option("--ids", o->ids, "Token ids to continue, e.g. 403,407")->delimiter(',');
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json, llama2.c tokenizer.bin or GGUF vocabulary (default: the one beside the model)");
  cmd->add_option("-n,--tokens", o->count, "Tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", o->sampling.temperature, "0: greedy")->capture_default_str();
  cmd->add_option("--top-k", o->sampling.top_k, "Sample among the k likeliest tokens (0: all)")->capture_default_str();
  cmd->add_option("--top-p", o->sampling.top_p, "Sample among the likeliest tokens whose probability reaches p")->capture_default_str();
  cmd->add_option("--seed", o->sampling.seed, "Seed of the sampler")->capture_default_str();
  cmd->add_flag("--no-bos", o->no_bos, "Do not start with the BOS token");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep going past the end-of-text token");
  cmd->callback([o, &global] { run_generate(*o, global); });
}

}  // namespace slmopt::cli
