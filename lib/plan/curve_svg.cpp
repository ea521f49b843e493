#include "plan/curve_svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/memory_limit.hpp"

namespace slmopt::plan {

namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

std::string fmt(const char* format, double a, double b = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, a, b);
  return buf;
}

}  // namespace

std::string error_size_svg(const std::vector<CurveSeries>& series, const std::string& title, const std::string& y_label) {
  constexpr double kWidth = 760, kHeight = 460, kLeft = 80, kRight = 230, kTop = 40, kBottom = 60;
  double min_x = std::numeric_limits<double>::max(), max_x = 0;
  double min_y = std::numeric_limits<double>::max(), max_y = 0;
  for (const auto& s : series)
    for (const auto& p : s.points) {
      min_x = std::min(min_x, static_cast<double>(p.bytes));
      max_x = std::max(max_x, static_cast<double>(p.bytes));
      if (p.error > 0) min_y = std::min(min_y, p.error);
      max_y = std::max(max_y, p.error);
    }
  if (max_x <= min_x) max_x = min_x + 1;
  if (max_y <= 0) max_y = 1;
  if (min_y > max_y) min_y = max_y / 10;
  // Whole decades on the log axis; zero errors sit on the bottom edge.
  const double lo = std::floor(std::log10(min_y)), hi = std::max(lo + 1, std::ceil(std::log10(max_y)));
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  const auto x_of = [&](double bytes) { return kLeft + (bytes - min_x) / (max_x - min_x) * plot_w; };
  const auto y_of = [&](double error) {
    const double e = error > 0 ? std::log10(error) : lo;
    return kTop + (hi - std::clamp(e, lo, hi)) / (hi - lo) * plot_h;
  };
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", kWidth) + "\" height=\"" +
                    fmt("%.0f", kHeight) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += "<text x=\"" + fmt("%.0f", kLeft) + "\" y=\"24\" font-size=\"15\">" + escape(title) + "</text>\n";
  for (double d = lo; d <= hi + 1e-9; d += 1) {
    const double y = y_of(std::pow(10.0, d));
    svg += "<line x1=\"" + fmt("%.1f", kLeft) + "\" x2=\"" + fmt("%.1f", kLeft + plot_w) + "\" y1=\"" + fmt("%.1f", y) +
           "\" y2=\"" + fmt("%.1f", y) + "\" stroke=\"#ddd\"/>\n";
    svg += "<text x=\"" + fmt("%.1f", kLeft - 6) + "\" y=\"" + fmt("%.1f", y + 4) + "\" text-anchor=\"end\">1e" +
           fmt("%.0f", d) + "</text>\n";
  }
  for (int i = 0; i <= 5; ++i) {
    const double bytes = min_x + (max_x - min_x) * i / 5.0;
    const double x = x_of(bytes);
    svg += "<line x1=\"" + fmt("%.1f", x) + "\" x2=\"" + fmt("%.1f", x) + "\" y1=\"" + fmt("%.1f", kTop) + "\" y2=\"" +
           fmt("%.1f", kTop + plot_h) + "\" stroke=\"#eee\"/>\n";
    svg += "<text x=\"" + fmt("%.1f", x) + "\" y=\"" + fmt("%.1f", kTop + plot_h + 18) + "\" text-anchor=\"middle\">" +
           escape(human_bytes(static_cast<uint64_t>(bytes))) + "</text>\n";
  }
  svg += "<rect x=\"" + fmt("%.1f", kLeft) + "\" y=\"" + fmt("%.1f", kTop) + "\" width=\"" + fmt("%.1f", plot_w) +
         "\" height=\"" + fmt("%.1f", plot_h) + "\" fill=\"none\" stroke=\"#444\"/>\n";
  svg += "<text x=\"" + fmt("%.1f", kLeft + plot_w / 2) + "\" y=\"" + fmt("%.1f", kHeight - 16) +
         "\" text-anchor=\"middle\">weight bytes</text>\n";
  svg += "<text transform=\"translate(18," + fmt("%.1f", kTop + plot_h / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
         escape(y_label) + "</text>\n";
  double legend_y = kTop + 10;
  for (const auto& s : series) {
    if (s.line && s.points.size() > 1) {
      std::string path;
      for (const auto& p : s.points)
        path += (path.empty() ? "M" : " L") + fmt("%.1f,%.1f", x_of(static_cast<double>(p.bytes)), y_of(p.error));
      svg += "<path d=\"" + path + "\" fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"2\"/>\n";
    }
    for (const auto& p : s.points) {
      const double x = x_of(static_cast<double>(p.bytes)), y = y_of(p.error);
      svg += "<circle cx=\"" + fmt("%.1f", x) + "\" cy=\"" + fmt("%.1f", y) + "\" r=\"" + (s.line ? "3" : "5") +
             "\" fill=\"" + s.color + "\"/>\n";
      if (!p.label.empty())
        svg += "<text x=\"" + fmt("%.1f", x + 7) + "\" y=\"" + fmt("%.1f", y - 6) + "\" fill=\"" + s.color + "\">" +
               escape(p.label) + "</text>\n";
    }
    const double lx = kLeft + plot_w + 16;
    svg += "<circle cx=\"" + fmt("%.1f", lx) + "\" cy=\"" + fmt("%.1f", legend_y - 4) + "\" r=\"5\" fill=\"" + s.color +
           "\"/>\n";
    svg += "<text x=\"" + fmt("%.1f", lx + 10) + "\" y=\"" + fmt("%.1f", legend_y) + "\">" + escape(s.name) + "</text>\n";
    legend_y += 20;
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace slmopt::plan
