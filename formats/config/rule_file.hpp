// Rule files for the passes, YAML or JSON (YAML's superset):
//
//   default: q4            # top-level scalars: pass-wide settings
//   min_elements: 1024
//   rules:                 # ordered; the first match wins
//     - match: "*embed*"   # glob over tensor or node name
//       bits: 8
//     - op: MatMul
//       match: "*attn*"
//       scheme: int4-g32-asym-k6
//     - match: "*head*"
//       keep: f16
#pragma once

#include <map>
#include <string>

#include "core/rules.hpp"

namespace slmopt::config {

struct RuleFile {
  std::map<std::string, std::string> settings;  // top-level scalars
  RuleSet rules;
};

// Error(BadInput) naming the file and line for anything malformed.
RuleFile read_rule_file(const std::string& path);
// The same for the text of a file not written yet; `path` names it in errors and labels.
RuleFile parse_rule_file(const std::string& text, const std::string& path);

}  // namespace slmopt::config
