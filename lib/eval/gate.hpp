// Accuracy gates: "METRIC[.STAT] OP NUMBER", e.g. "cosine>=0.999",
// "kl.upper<=0.01", "sqnr_db.lower>30". STAT is mean (default), lower, upper
// (the 95 % interval bounds) or worst; OP is >=, <=, >, <. A gate holds when
// every compared output satisfies it.
#pragma once

#include <cstdint>
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

// Why `metric` says nothing about an output of `elements` values ("" when it
// does): the cosine of two one-element vectors is always +-1 and the argmax
// of one value always agrees, so such a gate could not fail.
std::string vacuous_because(const std::string& metric, int64_t elements);
bool holds(const Gate& gate, double value);

}  // namespace slmopt::eval
