// Per-layer comparison: every intermediate value the reference and the
// candidate share by name (and shape) is compared on each sample, in the
// candidate's execution order, to find the first layer where the error jumps —
// the layer to keep at higher precision.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/session.hpp"

namespace slmopt::eval {

struct LayerError {
  std::string value;  // the compared tensor's name
  std::string op;     // op type of the candidate node that produced it
  double rel_l2 = 0;  // means over samples
  double cosine = 0;
  int samples = 0;
};

class PerLayerComparison {
 public:
  // Runs both sessions on `sample` with observers attached.
  void add_sample(runtime::Session& reference, runtime::Session& candidate, const std::map<std::string, Tensor>& sample);
  std::vector<LayerError> layers() const;
  // Index (into layers()) of the first value whose relative error exceeds
  // `floor` and is at least `factor` times every earlier value's.
  std::optional<size_t> first_jump(double factor = 4.0, double floor = 1e-4) const;

 private:
  struct Accumulator {
    std::string op;
    double rel_l2 = 0, cosine = 0;
    int samples = 0;
    size_t order = 0;
  };
  std::map<std::string, Accumulator> acc_;
};

}  // namespace slmopt::eval
