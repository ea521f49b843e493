#include "eval/gate.hpp"

#include <algorithm>
#include <cstdlib>
#include <regex>

#include "core/error.hpp"

namespace slmopt::eval {

Gate parse_gate(const std::string& expression) {
  static const std::regex re(R"(^\s*([a-z0-9_]+)(?:\.(mean|lower|upper|worst))?\s*(>=|<=|>|<)\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$)");
  std::smatch m;
  if (!std::regex_match(expression, m, re))
    throw_usage("gate '" + expression + "' is not of the form METRIC[.mean|.lower|.upper|.worst] OP NUMBER");
  Gate g;
  g.text = expression;
  g.metric = m[1].str();
  if (std::find(kMetricNames.begin(), kMetricNames.end(), g.metric) == kMetricNames.end()) {
    std::string names;
    for (const auto& n : kMetricNames) names += (names.empty() ? "" : ", ") + n;
    throw_usage("gate '" + expression + "': unknown metric '" + g.metric + "' (known: " + names + ")");
  }
  if (m[2].matched) g.stat = m[2].str();
  g.op = m[3].str();
  g.threshold = std::strtod(m[4].str().c_str(), nullptr);
  return g;
}

double select(const Summary& s, const std::string& stat) {
  if (stat == "lower") return s.lower;
  if (stat == "upper") return s.upper;
  if (stat == "worst") return s.worst;
  return s.mean;
}

bool holds(const Gate& g, double v) {
  if (g.op == ">=") return v >= g.threshold;
  if (g.op == "<=") return v <= g.threshold;
  if (g.op == ">") return v > g.threshold;
  return v < g.threshold;
}

std::string vacuous_because(const std::string& metric, int64_t elements) {
  if (elements != 1 || (metric != "cosine" && metric != "top1")) return "";
  return metric + " of a one-element output is always " + (metric == "cosine" ? "+-1" : "1") +
         "; max_abs or rel_l2 measure it";
}

}  // namespace slmopt::eval
