#include "config/rule_file.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include "core/atomic_file.hpp"
#include "core/error.hpp"

namespace slmopt::config {
namespace {

std::string where(const YAML::Node& n) { return "line " + std::to_string(n.Mark().line + 1); }

}  // namespace

RuleFile read_rule_file(const std::string& path) { return parse_rule_file(read_small_file(path, 16u << 20), path); }

RuleFile parse_rule_file(const std::string& text, const std::string& path) {
  RuleFile file;
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) throw_bad_input("expected a mapping with 'rules:' at the top", path);
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      if (key == "rules") continue;
      if (!kv.second.IsScalar()) throw_bad_input(where(kv.second) + ": '" + key + "' must be a single value", path);
      file.settings[key] = kv.second.as<std::string>();
    }
    const YAML::Node rules = root["rules"];
    if (rules && !rules.IsSequence()) throw_bad_input(where(rules) + ": 'rules' must be a list", path);
    if (rules)
      for (const auto& entry : rules) {
        if (!entry.IsMap()) throw_bad_input(where(entry) + ": each rule must be a mapping", path);
        Rule r;
        for (const auto& kv : entry) {
          const std::string key = kv.first.as<std::string>();
          if (!kv.second.IsScalar()) throw_bad_input(where(kv.second) + ": '" + key + "' must be a single value", path);
          const std::string value = kv.second.as<std::string>();
          if (key == "match") r.match = value;
          else if (key == "op") r.op = value;
          else r.settings[key] = value;
        }
        if (r.match.empty() && r.op.empty())
          throw_bad_input(where(entry) + ": a rule needs 'match' or 'op' (use match: \"*\" for every weight)", path);
        r.label = "rule " + std::to_string(file.rules.rules.size() + 1) + " (" + path + " " + where(entry) + ": " +
                  (r.op.empty() ? "" : r.op + " ") + r.match + ")";
        file.rules.rules.push_back(std::move(r));
      }
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's own text for this is "bad file", which names nothing.
    throw_bad_input("line " + std::to_string(e.mark.line + 1) + ": nested too deeply (lists or mappings " +
                        std::to_string(e.depth()) + " levels down)",
                    path);
  } catch (const YAML::Exception& e) {
    throw_bad_input("line " + std::to_string(e.mark.line + 1) + ": " + e.msg, path);
  }
  return file;
}

}  // namespace slmopt::config
