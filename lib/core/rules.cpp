#include "core/rules.hpp"

#include <cmath>
#include <cstdio>

#include "core/error.hpp"

namespace slmopt {
namespace {

std::string format_number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view text) {
  // Iterative matcher with one backtrack point: linear in practice, no recursion.
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

void check_setting_keys(const std::map<std::string, std::string>& settings, const std::vector<std::string>& known,
                        const std::string& where) {
  for (const auto& [key, value] : settings) {
    (void)value;
    bool found = false;
    for (const auto& k : known) found = found || k == key;
    if (found) continue;
    std::string keys;
    for (const auto& k : known) keys += (keys.empty() ? "" : ", ") + k;
    throw_usage(where + ": unknown setting '" + key + "' (known: " + keys + ")");
  }
}

bool setting_bool(const std::string& value, const std::string& where) {
  if (value == "true" || value == "yes" || value == "1") return true;
  if (value == "false" || value == "no" || value == "0") return false;
  throw_usage(where + ": expected true or false, got '" + value + "'");
}

int64_t setting_integer(const std::string& value, const std::string& where) {
  size_t used = 0;
  int64_t n = 0;
  try {
    n = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size()) throw_usage(where + ": expected an integer, got '" + value + "'");
  return n;
}

double setting_number(const std::string& value, double lo, double hi, const std::string& where) {
  size_t used = 0;
  double x = NAN;
  try {
    x = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || !(x >= lo && x <= hi))
    throw_usage(where + ": expected a number in [" + format_number(lo) + ", " + format_number(hi) + "], got '" + value + "'");
  return x;
}

int RuleSet::first_match(std::string_view tensor, std::string_view node, std::string_view op) const {
  for (size_t i = 0; i < rules.size(); ++i) {
    const Rule& r = rules[i];
    if (!r.op.empty() && r.op != op) continue;
    if (!r.match.empty() && !glob_match(r.match, tensor) && !glob_match(r.match, node)) continue;
    return static_cast<int>(i);
  }
  return -1;
}

RuleSet parse_rule_shorthand(std::string_view text, const std::string& key_for_numbers,
                             const std::string& key_for_words) {
  RuleSet set;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view entry = text.substr(start, end - start);
    start = end + 1;
    if (entry.empty()) continue;
    const size_t eq = entry.rfind('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == entry.size())
      throw_usage("'" + std::string(entry) + "' is not PATTERN=VALUE (e.g. \"*attn*=4\")");
    Rule r;
    r.match = std::string(entry.substr(0, eq));
    const std::string value(entry.substr(eq + 1));
    const bool number = value.find_first_not_of("0123456789") == std::string::npos;
    r.settings[number ? key_for_numbers : key_for_words] = value;
    r.label = "rule " + std::to_string(set.rules.size() + 1) + " (" + std::string(entry) + ")";
    set.rules.push_back(std::move(r));
  }
  return set;
}

}  // namespace slmopt
