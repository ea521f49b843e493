// slmopt eval --reference A --candidate B: run both models on the same samples,
// compare every output, and apply accuracy gates (exit code 1 when one fails).
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <unistd.h>

#include "cli_common.hpp"
#include "core/atomic_file.hpp"
#include "eval/gate.hpp"
#include "eval/per_layer.hpp"
#include "llm/decoder_graph.hpp"
#include "lm/lm_eval.hpp"
#include "lm_text.hpp"
#include "model_io.hpp"
#include "runtime/session.hpp"
#include "samples.hpp"

namespace slmopt::cli {
namespace {

struct EvalOptions {
  std::string reference, candidate;
  DataOptions data;
  std::vector<std::string> gates;
  std::string report, junit;
  bool per_layer = false;
  std::string requantize = "exact";
  // Language models: perplexity, KL and top-1 over windows of a text.
  std::string text, tokenizer;
  int64_t context = 0, stride = 0;
};

using Summaries = std::map<std::string, std::map<std::string, eval::Summary>>;

eval::Summary single_value(double v) { return eval::Summary{v, v, v, v, 1}; }

// Both models read the text in the same windows; the summaries are those of the
// output "logits" (kl and top1 per window, ppl and ppl_delta over all tokens).
Summaries compare_on_text(const EvalOptions& o, const Model& ref_model, const Model& cand_model, bool show,
                          nlohmann::ordered_json& doc) {
  lm::DecoderRunner ref(ref_model), cand(cand_model);
  const auto windows = text_windows(ref_model, o.reference, o.text, o.tokenizer, o.context, o.stride, ref.vocab());
  const auto context = static_cast<int64_t>(windows.front().size());
  const auto r = lm::compare_language_models(ref, cand, windows, [&](size_t done, size_t total) {
    if (show) std::fprintf(stderr, "\reval: %zu/%zu windows", done, total);
  });
  if (show) std::fprintf(stderr, "\n");
  std::vector<eval::SampleMetrics> per_window;
  for (const auto& w : r.windows) {
    const auto n = static_cast<double>(w.scored);
    per_window.push_back({{"kl", w.kl / n}, {"top1", static_cast<double>(w.top1_agree) / n}});
  }
  Summaries out;
  out["logits"] = eval::summarize(per_window);
  out["logits"]["ppl"] = single_value(r.candidate_ppl);
  out["logits"]["ppl_delta"] = single_value(r.candidate_ppl - r.reference_ppl);
  doc["language_model"] = {{"windows", windows.size()},    {"context", context},
                           {"scored_tokens", r.scored},     {"reference_ppl", r.reference_ppl},
                           {"candidate_ppl", r.candidate_ppl}, {"ppl_delta", r.candidate_ppl - r.reference_ppl},
                           {"kl_mean", r.kl_mean},          {"kl_worst_window", r.kl_max},
                           {"top1", r.top1}};
  return out;
}

struct GateResult {
  eval::Gate gate;
  std::string output;  // the output that decided the result (worst one)
  double value = 0;
  bool passed = true;
};

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string junit_xml(const std::vector<GateResult>& results) {
  int failures = 0;
  for (const auto& r : results) failures += !r.passed;
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"slmopt eval\" tests=\"" +
                    std::to_string(results.size()) + "\" failures=\"" + std::to_string(failures) + "\">\n";
  for (const auto& r : results) {
    xml += "  <testcase classname=\"slmopt.eval\" name=\"" + xml_escape(r.gate.text) + "\">";
    if (!r.passed) {
      char msg[256];
      std::snprintf(msg, sizeof(msg), "%s is %.6g on output '%s'", (r.gate.metric + "." + r.gate.stat).c_str(), r.value,
                    r.output.c_str());
      xml += "<failure message=\"" + xml_escape(msg) + "\"/>";
    }
    xml += "</testcase>\n";
  }
  return xml + "</testsuite>\n";
}

void run_eval(const EvalOptions& o, GlobalOptions& global) {
  std::vector<eval::Gate> gates;
  for (const auto& g : o.gates) gates.push_back(eval::parse_gate(g));
  Model ref_model = load_model(o.reference), cand_model = load_model(o.candidate);
  runtime::Session ref(ref_model), cand(cand_model);
  cand.set_requantization(*runtime::requantization_from_name(o.requantize));
  nlohmann::ordered_json doc;
  doc["reference"] = o.reference;
  doc["candidate"] = o.candidate;
  doc["requantize"] = o.requantize;
  Summaries summaries;
  std::vector<calib::Sample> samples;
  std::map<std::string, std::vector<eval::SampleMetrics>> per_output;
  std::map<std::string, int64_t> output_elements;
  eval::PerLayerComparison layers;
  if (!o.text.empty()) {
    if (o.per_layer) throw_usage("--per-layer compares tensors; it does not combine with --text");
    if (o.requantize != "exact")
      throw_usage("--requantize applies to integer layers run on samples; it does not combine with --text");
    if (!o.data.dir.empty() || !o.data.inputs.empty() || o.data.random > 0)
      throw_usage("--text is the data of a language-model eval: give it alone, without --data, --input or --random");
    summaries = compare_on_text(o, ref_model, cand_model, !global.quiet && !global.json && isatty(2), doc);
  } else {
    samples = load_requested_samples(o.data, ref.feed_inputs());
  }
  for (size_t i = 0; i < samples.size(); ++i) {
    if (o.per_layer) layers.add_sample(ref, cand, samples[i]);
    auto r = ref.run(samples[i]);
    auto c = with_context("candidate", [&] { return cand.run(samples[i]); });
    for (const auto& [name, tensor] : r) {
      auto it = c.find(name);
      if (it == c.end()) throw_bad_input("the candidate has no output '" + name + "'", o.candidate);
      output_elements[name] = tensor.numel();
      const Tensor& reference = tensor;  // clang 14 lambdas cannot capture bindings
      per_output[name].push_back(with_context("output '" + name + "'", [&] { return eval::compare_tensors(reference, it->second); }));
    }
    if (!global.quiet && !global.json && samples.size() > 20 && isatty(2))
      std::fprintf(stderr, "\reval: %zu/%zu samples", i + 1, samples.size());
  }
  if (!global.quiet && !global.json && samples.size() > 20 && isatty(2)) std::fprintf(stderr, "\n");

  for (const auto& [name, list] : per_output) summaries[name] = eval::summarize(list);

  std::vector<GateResult> results;
  std::vector<std::string> warnings;
  for (const auto& g : gates) {
    GateResult res{g, "", 0, true};
    bool first = true;
    std::string vacuous;
    for (const auto& [name, metrics] : summaries) {
      auto it = metrics.find(g.metric);
      if (it == metrics.end()) continue;
      auto elements = output_elements.find(name);
      if (const std::string why = eval::vacuous_because(g.metric, elements == output_elements.end() ? 0 : elements->second);
          !why.empty()) {
        vacuous = "gate '" + g.text + "' ignores output '" + name + "': " + why;
        warnings.push_back(vacuous);
        continue;
      }
      const double v = eval::select(it->second, g.stat);
      const bool worse = first || (eval::higher_is_better(g.metric) ? v < res.value : v > res.value);
      if (worse) {
        res.value = v;
        res.output = name;
        first = false;
      }
    }
    if (first && !vacuous.empty()) throw_usage(vacuous + ", and no other output has " + g.metric);
    if (first) throw_usage("gate '" + g.text + "': no output has the metric '" + g.metric + "'");
    res.passed = eval::holds(g, res.value);
    results.push_back(res);
  }

  if (o.text.empty()) doc["samples"] = samples.size();
  for (const auto& [name, metrics] : summaries)
    for (const auto& [metric, s] : metrics)
      doc["outputs"][name][metric] = {{"mean", s.mean}, {"lower", s.lower}, {"upper", s.upper}, {"worst", s.worst}};
  doc["gates"] = nlohmann::ordered_json::array();
  bool all_pass = true;
  for (const auto& r : results) {
    all_pass = all_pass && r.passed;
    doc["gates"].push_back({{"gate", r.gate.text}, {"value", r.value}, {"output", r.output}, {"passed", r.passed},
                            {"margin", r.value - r.gate.threshold}});
  }
  doc["passed"] = all_pass;
  doc["warnings"] = warnings;
  if (!global.quiet && !global.json)
    for (const auto& w : warnings) std::fprintf(stderr, "slmopt: warning: %s\n", w.c_str());
  std::vector<eval::LayerError> layer_rows;
  std::optional<size_t> jump;
  if (o.per_layer) {
    layer_rows = layers.layers();
    jump = layers.first_jump();
    doc["layers"] = nlohmann::ordered_json::array();
    for (const auto& l : layer_rows)
      doc["layers"].push_back({{"value", l.value}, {"op", l.op}, {"rel_l2", l.rel_l2}, {"cosine", l.cosine}});
    doc["first_jump"] = jump ? nlohmann::ordered_json(layer_rows[*jump].value) : nlohmann::ordered_json(nullptr);
  }
  if (!o.report.empty()) write_file_atomically(o.report, doc.dump(2) + "\n");
  if (!o.junit.empty()) write_file_atomically(o.junit, junit_xml(results));

  if (global.json) {
    print_json(doc);
  } else {
    if (o.text.empty()) {
      std::printf("%zu samples\n", samples.size());
    } else {
      const auto& lmj = doc["language_model"];
      std::printf("%d windows of %d tokens, %d tokens scored\n", lmj["windows"].get<int>(), lmj["context"].get<int>(),
                  lmj["scored_tokens"].get<int>());
      std::printf("perplexity reference %.4f, candidate %.4f (%+.4f)\n", lmj["reference_ppl"].get<double>(),
                  lmj["candidate_ppl"].get<double>(), lmj["ppl_delta"].get<double>());
    }
    for (const auto& [name, metrics] : summaries) {
      std::printf("output %s\n", name.c_str());
      for (const auto& [metric, s] : metrics)
        std::printf("  %-9s %12.6g   95%% CI [%.6g, %.6g]   worst %.6g\n", metric.c_str(), s.mean, s.lower, s.upper, s.worst);
    }
    if (o.per_layer) {
      std::printf("per layer (values both models compute, in execution order)\n");
      for (size_t i = 0; i < layer_rows.size(); ++i)
        std::printf("  %s %-40s %-12s rel_l2 %.3g  cosine %.6f\n", jump && *jump == i ? ">" : " ",
                    layer_rows[i].value.c_str(), layer_rows[i].op.c_str(), layer_rows[i].rel_l2, layer_rows[i].cosine);
      if (jump)
        std::printf("the error first jumps at '%s' (%s): keep that layer at higher precision\n",
                    layer_rows[*jump].value.c_str(), layer_rows[*jump].op.c_str());
    }
    for (const auto& r : results)
      std::printf("gate %-24s %s  (%s.%s = %.6g on '%s', threshold %.6g)\n", r.gate.text.c_str(), r.passed ? "PASS" : "FAIL",
                  r.gate.metric.c_str(), r.gate.stat.c_str(), r.value, r.output.c_str(), r.gate.threshold);
  }
  if (!all_pass) {
    for (const auto& r : results)
      if (!r.passed)
        std::fprintf(stderr, "slmopt: gate failed: %s (%s.%s = %.6g on output '%s', misses by %.3g)\n", r.gate.text.c_str(),
                     r.gate.metric.c_str(), r.gate.stat.c_str(), r.value, r.output.c_str(), std::abs(r.value - r.gate.threshold));
    global.exit_code = 1;
  }
}

}  // namespace

void setup_eval(CLI::App& app, GlobalOptions& global) {
  auto opts = std::make_shared<EvalOptions>();
  auto* cmd = app.add_subcommand("eval", "Compare a candidate model with a reference on the same inputs; apply gates");
  cmd->add_option("--reference", opts->reference, "The original model")->required();
  cmd->add_option("--candidate", opts->candidate, "The optimized model")->required();
  add_data_options(*cmd, opts->data);
  add_requantize_option(*cmd, opts->requantize, "the candidate's");
  cmd->add_option("--text", opts->text, "Language models: a UTF-8 text (or .npy of token ids); report perplexity, KL divergence and top-1 agreement");
  cmd->add_option("--tokenizer", opts->tokenizer, "With --text: tokenizer.json, llama2.c tokenizer.bin or GGUF vocabulary (default: beside the reference)");
  cmd->add_option("--ctx", opts->context, "With --text: tokens per window (default: the model's context, at most 512)");
  cmd->add_option("--stride", opts->stride, "With --text: tokens between window starts (default: --ctx)");
  cmd->add_option("--gate", opts->gates, "METRIC[.mean|.lower|.upper|.worst] OP NUMBER, e.g. cosine>=0.999; repeatable");
  cmd->add_option("--report", opts->report, "Write the full result as JSON");
  cmd->add_option("--junit", opts->junit, "Write the gates as a JUnit XML test suite");
  cmd->add_flag("--per-layer", opts->per_layer,
                "Compare every intermediate value both models compute and name the first layer where the error jumps");
  cmd->callback([opts, &global] { run_eval(*opts, global); });
}

}  // namespace slmopt::cli
