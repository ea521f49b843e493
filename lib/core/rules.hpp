// Layer-selection rules shared by every pass (quantize, prune, lowrank):
// ordered entries that match a tensor or node name by glob and/or an op type;
// the first match wins and its settings apply. Settings stay strings here;
// each pass reads the keys it knows and rejects the rest.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace slmopt {

struct Rule {
  std::string match;  // glob ('*', '?') over the tensor name or the node name; empty = any
  std::string op;     // op type; empty = any
  std::map<std::string, std::string> settings;
  std::string label;  // how reports name it, e.g. "rule 2 (*attn*)"
};

struct RuleSet {
  std::vector<Rule> rules;
  // Index of the first rule matching, or -1.
  int first_match(std::string_view tensor, std::string_view node, std::string_view op) const;
};

bool glob_match(std::string_view pattern, std::string_view text);

// Reading a rule's settings. `where` names the rule (and key) in the
// Error(Usage) a bad value raises.
void check_setting_keys(const std::map<std::string, std::string>& settings, const std::vector<std::string>& known,
                        const std::string& where);
bool setting_bool(const std::string& value, const std::string& where);
int64_t setting_integer(const std::string& value, const std::string& where);
// A number in [lo, hi].
double setting_number(const std::string& value, double lo, double hi, const std::string& where);

// The CLI shorthand "embed*=8,*attn*=4,*=q4": one rule per comma-separated
// entry, in order; a number sets bits, anything else a scheme or preset.
// Error(Usage) on an entry without '='.
RuleSet parse_rule_shorthand(std::string_view text, const std::string& key_for_numbers,
                             const std::string& key_for_words);

}  // namespace slmopt
