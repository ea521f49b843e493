// Accuracy gates: "METRIC[.STAT] OP NUMBER", e.g. "cosine>=0.999",
// "kl.upper<=0.01", "sqnr_db.lower>30". STAT is mean (default), lower, upper
// (the 95 % interval bounds) or worst; OP is >=, <=, >, <. A gate holds when
// every compared output satisfies it.
#pragma once

#include <string>

#include "eval/metrics.hpp"

namespace slmopt::eval {

struct Gate {
  std::string text;
  std::string metric;
  std::string stat = "mean";
  std::string op;
  double threshold = 0;
};

// Throws Error(Usage) naming the expression when it does not parse or names an
// unknown metric or statistic.
Gate parse_gate(const std::string& expression);

double select(const Summary& s, const std::string& stat);
bool holds(const Gate& gate, double value);

}  // namespace slmopt::eval
