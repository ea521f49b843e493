#include <nlohmann/json.hpp>

#include "common/json_integer.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "tokenizer/vocab_io.hpp"

namespace slmopt::text {
namespace {
using nlohmann::json;

std::string type_of(const json& j) { return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : ""; }

// The split regex of the pre-tokenizer, and whether a space is put in front.
void read_pre_tokenizer(const json& pre, BpeVocab& v, const std::string& file) {
  const std::string type = type_of(pre);
  if (type == "ByteLevel") {
    if (!pre.value("use_regex", true)) throw_bad_input("a ByteLevel pre-tokenizer without its regex is not supported", file);
    v.pattern = kGpt2Pattern;
    v.add_prefix_space = pre.value("add_prefix_space", false);
    return;
  }
  if (type == "Sequence" && pre.contains("pretokenizers") && pre["pretokenizers"].is_array()) {
    const auto& steps = pre["pretokenizers"];
    if (steps.size() == 2 && type_of(steps[0]) == "Split" && type_of(steps[1]) == "ByteLevel" &&
        steps[0].contains("pattern") && steps[0]["pattern"].contains("Regex") && !steps[1].value("use_regex", true)) {
      v.pattern = steps[0]["pattern"]["Regex"].get<std::string>();
      v.add_prefix_space = steps[1].value("add_prefix_space", false);
      return;
    }
  }
  throw_bad_input("pre_tokenizer '" + (type.empty() ? pre.dump().substr(0, 60) : type) +
                      "' is not supported (ByteLevel, or Split then ByteLevel)",
                  file);
}

}  // namespace

BpeVocab read_hf_tokenizer(const std::string& path) {
  const json j = json::parse(read_small_file(path, 1u << 30), nullptr, false);
  if (!j.is_object()) throw_bad_input("tokenizer.json is not a JSON object", path);
  try {
    const json& model = j.at("model");
    if (type_of(model) != "BPE") throw_bad_input("tokenizer model '" + type_of(model) + "' is not supported (BPE)", path);
    if (model.value("byte_fallback", false))
      throw_bad_input("BPE with byte_fallback (SentencePiece-style) is not supported from tokenizer.json; use the GGUF vocabulary", path);
    if (j.contains("normalizer") && !j["normalizer"].is_null())
      throw_bad_input("normalizer '" + type_of(j["normalizer"]) + "' is not supported", path);
    BpeVocab v;
    read_pre_tokenizer(j.at("pre_tokenizer"), v, path);
    const json& vocab = model.at("vocab");
    std::vector<std::string> tokens(vocab.size());
    std::vector<bool> seen(vocab.size(), false);
    for (const auto& [token, id] : vocab.items()) {
      const auto i = json_integer<int64_t>(id);
      if (i < 0 || i >= static_cast<int64_t>(tokens.size()) || seen[static_cast<size_t>(i)])
        throw_bad_input("vocab id " + std::to_string(i) + " of '" + token + "' is out of range or repeated", path);
      tokens[static_cast<size_t>(i)] = token;
      seen[static_cast<size_t>(i)] = true;
    }
    for (const auto& m : model.at("merges")) {
      if (m.is_string()) {
        const auto s = m.get<std::string>();
        const auto space = s.find(' ');
        if (space == std::string::npos) throw_bad_input("merge '" + s + "' has no space", path);
        v.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else {
        v.merges.emplace_back(m.at(0).get<std::string>(), m.at(1).get<std::string>());
      }
    }
    if (j.contains("added_tokens"))
      for (const auto& a : j["added_tokens"]) {
        const auto id = json_integer<int64_t>(a.at("id"));
        const auto content = a.at("content").get<std::string>();
        // Added tokens sit inside the vocabulary or extend it: a far id would
        // only make us allocate a huge table from a small file.
        if (id < 0 || id >= static_cast<int64_t>(vocab.size() + j["added_tokens"].size()))
          throw_bad_input("added token id " + std::to_string(id) + " is out of range", path);
        if (id >= static_cast<int64_t>(tokens.size())) tokens.resize(static_cast<size_t>(id) + 1);
        tokens[static_cast<size_t>(id)] = content;
        v.special.emplace_back(content, id);
      }
    v.tokens = std::move(tokens);
    return v;
  } catch (const json::exception& e) {
    throw_bad_input(std::string("tokenizer.json: ") + e.what(), path);
  }
}

}  // namespace slmopt::text
