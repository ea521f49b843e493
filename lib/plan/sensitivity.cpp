#include "plan/sensitivity.hpp"

#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/json_integer.hpp"
#include "common/sha256.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"

namespace slmopt::plan {

std::string model_digest(const Model& model) {
  std::string parts;
  for (const auto& node : model.graph.nodes) parts += node.op_type + "(" + node.name + ");";
  for (const auto& init : model.graph.initializers) {
    const Tensor& t = init.tensor;
    parts += init.name + ":" + std::string(dtype_name(t.dtype())) + shape_to_string(t.shape()) + ":";
    if (!t.is_quantized() && t.bytes()) parts += to_hex(sha256(t.bytes(), t.nbytes()));
    parts += ";";
  }
  return to_hex(sha256(parts.data(), parts.size()));
}

std::string plan_signature(const std::vector<size_t>& pick) {
  std::string s;
  for (size_t i = 0; i < pick.size(); ++i) s += (i ? "." : "") + std::to_string(pick[i]);
  return s;
}

namespace {

// The proxy ratio (t over r) of one weight, squared.
double proxy_ratio(const Variants& v, size_t w, size_t t, size_t r) {
  const double ot = v.output_error(w, t), orr = v.output_error(w, r);
  const bool outputs = ot >= 0 && orr > 0;
  const double num = outputs ? ot : v.relative_error(w, t), den = outputs ? orr : v.relative_error(w, r);
  if (den <= 0) return num > 0 ? 1e6 : 0.0;
  return (num / den) * (num / den);
}

}  // namespace

SensitivityTable measure_sensitivity(const Variants& variants, const ErrorMeasure& measure, const std::string& key,
                                     const SensitivityProgress& progress, bool scaled, size_t reference) {
  const auto start = std::chrono::steady_clock::now();
  SensitivityTable table;
  table.key = key;
  table.metric = measure.metric();
  table.treatments = variants.treatments();
  table.fixed_bytes = variants.fixed_bytes();
  table.scaled = scaled;
  const size_t weights = variants.weights().size(), treatments = table.treatments.size();
  if (scaled && (reference >= treatments || is_float_treatment(table.treatments[reference])))
    throw_usage("scaled sensitivities need a quantization scheme as their reference treatment");
  size_t f32 = treatments;
  for (size_t t = 0; t < treatments; ++t)
    if (table.treatments[t] == "f32") f32 = t;
  // Every run wanted, side by side: (weight, treatment) pairs.
  std::vector<std::pair<size_t, size_t>> runs;
  for (size_t w = 0; w < weights; ++w)
    for (size_t t = 0; t < treatments; ++t)
      if (scaled ? t == reference : t != f32) runs.emplace_back(w, t);
  const size_t total = runs.size();
  size_t done = 0;
  const auto errors = measure_many(
      measure, total, [&](size_t i) { return variants.with_one(runs[i].first, runs[i].second); },
      [&](size_t i) {
        if (progress)
          progress(++done, total, variants.weights()[runs[i].first].name + " " + table.treatments[runs[i].second]);
      });
  for (size_t w = 0; w < weights; ++w) {
    WeightSensitivity row{variants.weights()[w], {}, std::vector<double>(treatments, 0.0)};
    for (size_t t = 0; t < treatments; ++t) row.bytes.push_back(variants.bytes(w, t));
    table.weights.push_back(std::move(row));
  }
  for (size_t i = 0; i < total; ++i) table.weights[runs[i].first].error[runs[i].second] = errors[i];
  if (scaled)
    for (size_t w = 0; w < weights; ++w) {
      auto& error = table.weights[w].error;
      const double measured = error[reference];
      for (size_t t = 0; t < treatments; ++t)
        error[t] = t == f32 ? 0.0 : t == reference ? measured : measured * proxy_ratio(variants, w, t, reference);
    }
  if (progress) progress(total, total, "");
  table.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return table;
}

void write_sensitivity_cache(const std::string& path, const SensitivityTable& table) {
  nlohmann::ordered_json weights = nlohmann::ordered_json::array();
  for (const auto& w : table.weights)
    weights.push_back({{"name", w.weight.name},
                       {"op", w.weight.op},
                       {"shape", w.weight.shape},
                       {"bytes", w.bytes},
                       {"error", w.error}});
  nlohmann::ordered_json measured = nlohmann::ordered_json::object();
  for (const auto& [signature, error] : table.measured) measured[signature] = error;
  const nlohmann::ordered_json doc = {{"format", "slmopt-sensitivity-1"},
                                      {"key", table.key},
                                      {"metric", table.metric},
                                      {"treatments", table.treatments},
                                      {"fixed_bytes", table.fixed_bytes},
                                      {"seconds", table.seconds},
                                      {"scaled", table.scaled},
                                      {"weights", weights},
                                      {"measured", measured}};
  write_file_atomically(path, doc.dump(1) + "\n", /*may_replace_input=*/true);  // read, then refreshed
}

std::optional<SensitivityTable> read_sensitivity_cache(const std::string& path, const std::string& key) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  const std::string text = read_small_file(path);
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw_bad_input(std::string("not a sensitivity cache: ") + e.what(), path);
  }
  SensitivityTable table;
  try {
    if (!doc.is_object() || doc.value("format", "") != "slmopt-sensitivity-1")
      throw_bad_input("not a sensitivity cache (format is not slmopt-sensitivity-1)", path);
    if (doc.at("key").get<std::string>() != key) return std::nullopt;
    table.key = key;
    table.metric = doc.at("metric").get<std::string>();
    table.treatments = doc.at("treatments").get<std::vector<std::string>>();
    table.fixed_bytes = json_integer<uint64_t>(doc.at("fixed_bytes"));
    table.seconds = doc.at("seconds").get<double>();
    table.scaled = doc.at("scaled").get<bool>();
    for (const auto& w : doc.at("weights")) {
      WeightSensitivity row;
      row.weight.name = w.at("name").get<std::string>();
      row.weight.op = w.at("op").get<std::string>();
      row.weight.shape = json_integers<int64_t>(w.at("shape"));
      row.weight.numel = 1;
      for (int64_t d : row.weight.shape) {
        if (d < 0 || (d > 0 && row.weight.numel > INT64_MAX / d)) throw_bad_input("weight shape out of range", path);
        row.weight.numel *= d;
      }
      row.bytes = json_integers<uint64_t>(w.at("bytes"));
      row.error = w.at("error").get<std::vector<double>>();
      if (row.bytes.size() != table.treatments.size() || row.error.size() != table.treatments.size())
        throw_bad_input("weight '" + row.weight.name + "' lists " + std::to_string(row.bytes.size()) + " sizes and " +
                            std::to_string(row.error.size()) + " errors for " + std::to_string(table.treatments.size()) +
                            " treatments",
                        path);
      table.weights.push_back(std::move(row));
    }
    for (const auto& [signature, error] : doc.at("measured").items()) table.measured[signature] = error.get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw_bad_input(std::string("malformed sensitivity cache: ") + e.what(), path);
  }
  return table;
}

}  // namespace slmopt::plan
