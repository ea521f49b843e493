// The error-vs-size plot of a plan report, as a self-contained SVG: bytes on a
// linear x axis, error on a logarithmic y axis, lines for curves and markers
// for single configurations.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace slmopt::plan {

struct CurvePoint {
  uint64_t bytes = 0;
  double error = 0;
  std::string label;  // shown beside a marker; empty for curve points
};

struct CurveSeries {
  std::string name;  // legend text
  std::string color;  // CSS colour
  bool line = true;   // joined points, or markers only
  std::vector<CurvePoint> points;
};

std::string error_size_svg(const std::vector<CurveSeries>& series, const std::string& title, const std::string& y_label);

}  // namespace slmopt::plan
